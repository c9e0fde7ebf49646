"""The training loop, in named sections: data, mesh, model, shard, restore, loop
(update, log, checkpoint, eval, preemption).

``train_and_evaluate(config, workdir, source=None)`` is the whole run; tests inject a
``source`` (any object with ``manifest()`` and ``batches(**kw)``, see
``linkbert_jax.pretrain.input_pipeline.TFRecordSource``, the default).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from linkbert_jax import sharding
from linkbert_jax.checkpoint import checkpoints, orbax_faults, step_config
from linkbert_jax.data import arm_checks
from linkbert_jax.hf import vocabulary
from linkbert_jax.infra import metrics_log, step_costs
from linkbert_jax.pretrain import (data_position, input_checks, resume_checks, run_paths,
                                   steps)
from linkbert_jax.pretrain import recipe as recipe_lib
from linkbert_jax.errors import ConfigError, NonFiniteLossError
from linkbert_jax.pretrain.evaluation import evaluate_and_log
from linkbert_jax.model import (ARCHITECTURE_FIELDS, DROPOUT_FIELDS, NUMERICS_FIELDS,
                                ModelConfig)
from linkbert_jax.infra.preemption import StopSignal

log = logging.getLogger("linkbert_jax")


# ---------------------------------------------------------------------------- model init

def load_hf_params(path: str, model_cfg: ModelConfig):
    """Parameters of a Hugging Face BERT directory (``linkbert_jax.hf.convert.load_hf``),
    with the objective's relation head (BERT's NSP head for nsp; drawn when absent)."""
    from linkbert_jax.hf import convert
    numerics = {k: getattr(model_cfg, k) for k in  # num_relations: the objective's head
                NUMERICS_FIELDS + DROPOUT_FIELDS + ("num_relations",)}
    try:
        loaded = convert.load_hf(path, **numerics)
    except (convert.ConversionError, OSError, ValueError) as e:
        raise ConfigError(f"init_from_hf {path!r}: {e}") from None
    diff = {k: (getattr(loaded.config, k), getattr(model_cfg, k)) for k in ARCHITECTURE_FIELDS
            if getattr(loaded.config, k) != getattr(model_cfg, k)}
    if diff:
        raise ConfigError(f"init_from_hf {path!r} differs from config.model: " + ", ".join(
            f"{k} {a} (HF) vs {b}" for k, (a, b) in diff.items()))
    return loaded.params


def restore_or_init(config, mgr, setup: Setup) -> tuple[steps.TrainState, Optional[dict]]:
    """(state, meta): the latest complete and valid checkpoint, else HF weights, else
    from scratch."""
    recipe = setup.recipe
    restored = checkpoints.restore_latest_valid(mgr, recipe.abstract_state.params,
                                                recipe.abstract_state.opt_state)
    if restored is not None:
        step, params, opt_state, meta = restored
        st = jax.device_put(jnp.asarray(meta["step"], jnp.int32), recipe.state_shardings.step)
        log.info("resumed from checkpoint at step %d", step)
        return steps.TrainState(step=st, params=params, opt_state=opt_state), meta
    if config.init_from_hf:
        params = load_hf_params(config.init_from_hf, recipe.model_cfg)
        log.info("initialized from Hugging Face %s", config.init_from_hf)
        return steps.state_from_params(params, recipe.tx, recipe.state_shardings), None
    rng = jax.random.fold_in(jax.random.key(config.seed), 0)
    return recipe.init_state(rng), None


@dataclasses.dataclass(frozen=True)
class Run:
    """Where the loop starts: the state, the base rng, and the step and data position
    (examples consumed, ``data_position.Position``) it resumes at."""
    state: steps.TrainState
    base_rng: Any
    step: int
    data: data_position.Position


def start_run(config, mgr, setup: Setup) -> Run:
    """Restores or initialises the state, with the rng and data position saved with it."""
    state, meta = restore_or_init(config, mgr, setup)
    base_rng = jax.random.key(config.seed)
    if meta is not None:
        base_rng = jax.random.wrap_key_data(np.asarray(meta["rng"], np.uint32))
    step = int(jax.device_get(state.step))
    return Run(state=state, base_rng=base_rng, step=step,
               data=data_position.start_position(config, meta, step))


# ---------------------------------------------------------------------------- loop

def _save(mgr, state, base_rng, step: int, saved: dict, force: bool = False) -> None:
    """``saved``: the data position, config and vocabulary (:func:`saved_meta`)."""
    meta = {"step": int(step), "process_count": jax.process_count(), **saved,
            "rng": np.asarray(jax.random.key_data(base_rng)).tolist()}
    checkpoints.save(mgr, step, state.params, state.opt_state, meta, force=force)


def _check_finite(pending: list, mgr) -> None:
    """Raise (keeping the last good checkpoint) if any pending step's loss is not finite."""
    losses = jax.device_get([m["loss"] for _, m in pending])
    for (step, _), loss in zip(pending, losses):
        if not np.isfinite(loss):
            mgr.wait_until_finished()
            good = checkpoints.latest_complete_step(mgr)
            raise NonFiniteLossError(
                f"loss is {float(loss)} at step {step}: training stopped. The last good "
                f"checkpoint (step {good}) is kept; lower the learning rate or check the data.")


def _save_now(mgr, state, base_rng, step: int, saved: dict, pending: list) -> bool:
    """Save ``step`` unless it is saved already (a signal during its eval); True."""
    if mgr.latest_step() != step:
        _check_finite(pending, mgr)
        _save(mgr, state, base_rng, step, saved, force=True)
    return True


@dataclasses.dataclass(frozen=True)
class Setup:
    """Sections data, mesh, model, shard of a run."""
    source: Any  # manifest() and batches(**kw), e.g. input_pipeline.TFRecordSource
    recipe: recipe_lib.Recipe  # the model config, mesh, optimizer and state shardings
    saved: dict  # saved with each checkpoint's meta: the config and the vocabulary hash


def saved_meta(resolved: dict, workdir: str, manifest: dict) -> dict:
    """What each checkpoint records besides the state: the config it was trained with
    (:mod:`linkbert_jax.checkpoint.step_config`) and the data's vocabulary hash (None: unknown)."""
    vocab = manifest.get(vocabulary.KEY)
    return {step_config.META_KEY: step_config.record(resolved, workdir),
            **({vocabulary.KEY: vocab} if vocab else {})}


def setup_run(config, workdir: str, source=None) -> Setup:
    """Everything checked before compiling; writes the resolved config to the workdir."""
    run_paths.prepare(config, workdir)
    if source is None:
        from linkbert_jax.pretrain.input_pipeline import TFRecordSource  # TensorFlow only when used
        source = TFRecordSource(config.data_dir)
    manifest = source.manifest()
    log.info(arm_checks.describe(config, manifest))
    recipe = recipe_lib.build(config, manifest)  # counts, model, mesh, state shardings
    input_checks.check(config, manifest, recipe.model_cfg)
    if hasattr(source, "check"):  # optional in the source protocol
        evals = bool(config.eval_every_steps or config.eval_at_end)
        source.check(manifest, config.train_split, config.eval_split if evals else None)
    resume_checks.check(workdir, config.data_dir, manifest, recipe.abstract_state)
    resolved = {**config.to_dict(), "model": recipe.model_cfg.to_dict()}  # what export reads back
    if jax.process_index() == 0:
        changes = checkpoints.config_changes(workdir, resolved)
        if changes:
            log.warning("%s: the config differs from the one this workdir was trained with "
                        "(the run goes on with the new one): %s", workdir, "; ".join(changes))
        checkpoints.write_config(workdir, resolved)
    return Setup(source=source, recipe=recipe, saved=saved_meta(resolved, workdir, manifest))


def compile_train_step(setup: Setup):
    """``(train_fn, eval_fn)``: the train step compiled ahead of time, its per-device
    memory and FLOP ratio logged (docs/aot.md)."""
    recipe = setup.recipe
    train_fn, eval_fn = recipe.compile()
    compiled = step_costs.compile_logged(
        train_fn, recipe.abstract_state, recipe.abstract_batch(), recipe.abstract_key(),
        analytic_flops=recipe.flops_per_step, devices=jax.devices())
    return steps.with_schedule(compiled, recipe.config), eval_fn


def _throughput(config, recipe: recipe_lib.Recipe, start: int) -> metrics_log.Throughput:
    peak = metrics_log.peak_flops_total(jax.devices(), config.peak_flops_per_device)
    logging.info("MFU against a peak of %.1f TFLOP/s (%d %s devices%s)", peak / 1e12,
                 jax.device_count(), jax.devices()[0].device_kind,
                 ", measured 2048^3 matmul" if jax.devices()[0].device_kind.lower() == "cpu"
                 and not config.peak_flops_per_device else "")
    return metrics_log.Throughput(recipe.flops_per_step,
                                  config.seq_length * config.global_batch_size, peak,
                                  start, config.num_train_steps)


def _log(pending: list, mgr, meter, writer, step: int, total: int) -> list:
    """Log the mean of the metrics since the last log point (their losses checked
    first); returns the new, empty pending list."""
    _check_finite(pending, mgr)
    row = metrics_log.mean_of(jax.device_get([m for _, m in pending]))
    row.update(meter.measure(step))
    writer.write(step, row)
    log.info(metrics_log.console_line(step, total, row))
    return []


def train_and_evaluate(config, workdir: str, source=None) -> steps.TrainState:
    setup = setup_run(config, workdir, source)
    train_fn, eval_fn = compile_train_step(setup)
    data_sh = setup.recipe.data_sharding

    # --- restore: latest complete checkpoint, else HF weights, else from scratch
    mgr = checkpoints.manager(workdir, max_to_keep=config.keep_checkpoints,
                              async_save=config.async_checkpointing)
    run = start_run(config, mgr, setup)
    state, base_rng, start = run.state, run.base_rng, run.step
    saved_at = lambda s: {**run.data.at(s).meta(), **setup.saved}  # noqa: E731 (meta)

    # --- input: this process's shard of the stream, resumed at the saved position
    source = setup.source
    it = data_position.train_batches(config, source, run.data, data_sh)

    # --- metrics
    total = config.num_train_steps
    writer = metrics_log.MetricsWriter(workdir, enabled=jax.process_index() == 0)
    meter = _throughput(config, setup.recipe, start)
    stop = StopSignal()
    failures = orbax_faults.SaveFailures().__enter__()  # background save errors
    pending: list = []  # (step, device metrics) since the last log point
    step = start
    try:  # everything from here on is released by _close, a failing eval included
        if start >= total and config.eval_at_end:  # a finished run whose final eval failed
            evaluate_and_log(config, source, eval_fn, state.params, data_sh, writer, step, stop)
        while step < total:
            # --- update
            t0 = time.perf_counter()
            batch = sharding.global_batch(next(it), data_sh)
            meter.add_input_wait(time.perf_counter() - t0)
            state, m = train_fn(state, batch, base_rng)
            step += 1
            pending.append((step, m))
            # --- log
            if step % config.log_every_steps == 0 or step == total or step == start + 1:
                pending = _log(pending, mgr, meter, writer, step, total)
            # --- checkpoint (only after every loss since the last one was checked)
            checkpoints.raise_if_save_failed(mgr, failures)
            preempted = stop.should_stop(step)
            if step % config.checkpoint_every_steps == 0 or step == total or preempted:
                _check_finite(pending, mgr)
                _save(mgr, state, base_rng, step, saved_at(step), force=preempted)
            # --- eval
            if (config.eval_every_steps and step % config.eval_every_steps == 0) or (
                    config.eval_at_end and step == total):
                if not evaluate_and_log(config, source, eval_fn, state.params, data_sh, writer,
                                        step, stop):  # a signal: save (if not yet), stop
                    preempted = _save_now(mgr, state, base_rng, step, saved_at(step), pending)
                meter.reset(step)
            # --- preemption
            if preempted:
                log.warning("stopping at step %d after a termination signal", step)
                break
        checkpoints.raise_if_save_failed(mgr, failures, wait=True)
    finally:
        _close(mgr, failures, writer, stop)
    return state


def _close(mgr, failures, writer, stop) -> None:
    """Wait for saves in flight (their errors were reported by ``raise_if_save_failed``,
    or an error is already on its way out), then release everything."""
    try:
        mgr.wait_until_finished()
    except Exception:  # noqa: BLE001
        pass
    mgr.close()
    failures.__exit__(None, None, None)
    writer.close()
    stop.restore()

