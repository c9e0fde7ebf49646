"""The training loop, in named sections: data, mesh, model, shard, restore, loop
(update, log, checkpoint, eval, preemption).

``train_and_evaluate(config, workdir, source=None)`` is the whole run; tests inject a
``source`` (any object with ``manifest()`` and ``batches(**kw)``, see ``TFRecordSource``).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

from linkbert_jax import (checkpoints, metrics_log, objectives, optimizer, orbax_faults,
                          sharding, step_costs, steps)
from linkbert_jax.data import features
from linkbert_jax.errors import ConfigError, NonFiniteLossError
from linkbert_jax.model import ARCHITECTURE_FIELDS, ModelConfig
from linkbert_jax.preemption import StopSignal

log = logging.getLogger("linkbert_jax")


# ---------------------------------------------------------------------------- data

class TFRecordSource:
    """Batches from the corpus builder's TFRecord directory (``linkbert_jax.input_pipeline``)."""

    def __init__(self, data_dir: str):
        if not data_dir:
            raise ConfigError("config.data_dir is not set: pass --config.data_dir=DIR "
                              "(a TFRecord directory written by the corpus builder)")
        from linkbert_jax import input_pipeline

        if not input_pipeline.is_data_dir(data_dir):
            raise ConfigError(f"data_dir {data_dir!r} does not exist or is not a directory")
        self.data_dir = data_dir

    def manifest(self) -> dict:
        from linkbert_jax import input_pipeline
        try:
            return input_pipeline.read_manifest(self.data_dir)
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"data_dir {self.data_dir!r}: cannot read its manifest ({e})")

    def batches(self, *, masking, **kwargs) -> Iterator[dict]:
        from linkbert_jax import input_pipeline
        m = input_pipeline.MaskingConfig(**dict(masking))
        return input_pipeline.batches(self.data_dir, masking=m, **kwargs)

    def check(self, manifest: dict, train_split: str, eval_split: Optional[str]) -> None:
        """At start-up: the files are those of the manifest (sizes; the eval split read in
        full, CRC checked), so damage shows now and not after hours of training."""
        from linkbert_jax import input_pipeline
        input_pipeline.check_files(self.data_dir, manifest, train_split)
        if eval_split is not None:
            input_pipeline.check_files(self.data_dir, manifest, eval_split, read_all=True)


# ---------------------------------------------------------------------------- checks

def model_config_from(config, manifest: Optional[dict] = None) -> ModelConfig:
    """``config.model`` as a ModelConfig; ``vocab_size <= 0`` means the data's vocabulary."""
    fields = dict(config.model)
    if fields.get("vocab_size", 0) <= 0:
        if not manifest or not manifest.get("vocab_size"):
            raise ConfigError("config.model.vocab_size is 0 (= the data's) but the data "
                              "manifest has no vocab_size; set --config.model.vocab_size")
        fields["vocab_size"] = int(manifest["vocab_size"])
    return ModelConfig.from_dict(fields)


# Counts that must be >= 1 and >= 0 (a negative step count used to run nothing, exit 0).
_AT_LEAST_ONE = ("num_train_steps", "checkpoint_every_steps", "log_every_steps",
                 "microbatches", "seq_length", "keep_checkpoints")
_AT_LEAST_ZERO = ("warmup_steps", "warmup_fraction", "eval_every_steps", "eval_batch_size",
                  "eval_max_batches")


def check_counts(config) -> None:
    for names, low in ((_AT_LEAST_ONE, 1), (_AT_LEAST_ZERO, 0)):
        for name in names:
            value = config.get(name)
            if value is not None and value < low:
                raise ConfigError(f"{name} is {value}: it must be at least {low} "
                                  f"(--config.{name})")


def validate(config, manifest: dict, model_cfg: ModelConfig, mesh) -> None:
    """Everything that would otherwise fail deep inside compilation, as one message."""
    check_counts(config)
    rules = sharding.rules_from_config(config)
    dp, n_proc = sharding.data_parallel_size(mesh, rules), jax.process_count()
    mv = manifest.get("vocab_size")
    if mv is not None and int(mv) != model_cfg.vocab_size:
        raise ConfigError(
            f"the data's vocabulary has {mv} tokens but the model's has "
            f"{model_cfg.vocab_size}; set --config.model.vocab_size={mv} or use data "
            f"tokenized with the model's vocabulary")
    try:
        features.check_fits(manifest, config.seq_length)
    except ValueError as e:
        raise ConfigError(f"{e}; set --config.seq_length={manifest['max_seq_length']} or "
                          f"build the data with --max_seq_length {config.seq_length}") from None
    evals = bool(config.eval_every_steps or config.eval_at_end)
    for split in [config.train_split] + ([config.eval_split] if evals else []):
        try:
            features.check_enough_files(manifest, split, n_proc)
        except ValueError as e:
            raise ConfigError(str(e) + ("" if split == config.train_split else
                                        ", or set --config.eval_every_steps=0 "
                                        "--config.eval_at_end=False")) from None
    if config.seq_length > model_cfg.max_position_embeddings:
        raise ConfigError(f"seq_length {config.seq_length} > max_position_embeddings "
                          f"{model_cfg.max_position_embeddings}")
    for name, b in (("global_batch_size", config.global_batch_size),
                    ("eval_batch_size", eval_batch_size(config))):
        unit = dp * (config.microbatches if name == "global_batch_size" else 1)
        if b <= 0 or b % unit:
            what = (f"data-parallel size {dp}" if unit == dp else
                    f"data-parallel size {dp} x microbatches {config.microbatches}")
            raise ConfigError(f"{name} {b} is not divisible by the {what} (mesh "
                              f"{dict(mesh.shape)}); choose a multiple of {unit}")
    if dp % n_proc:
        raise ConfigError(f"the batch is split over {dp} devices, which does not divide "
                          f"over {n_proc} processes; give each process its own batch shard")
    if config.init_from_hf and not os.path.isdir(config.init_from_hf):
        raise ConfigError(f"init_from_hf {config.init_from_hf!r} is not a directory; pass "
                          f"--config.init_from_hf=DIR (a Hugging Face BERT) or '' to start "
                          f"from scratch")
    check_vocabulary(config.init_from_hf, manifest)


def check_vocabulary(hf_dir: str, manifest: dict) -> None:
    """The data must be tokenized with the vocabulary of the weights it continues (a
    vocabulary of the same size but other tokens would train silently on wrong ids)."""
    want = manifest.get("vocab_sha256")
    if not (want and hf_dir and any(os.path.exists(os.path.join(hf_dir, name))
                                    for name in ("tokenizer.json", "vocab.txt"))):
        return
    from linkbert_jax.data import tokenizer
    try:
        have = tokenizer.describe(hf_dir)["vocab_sha256"]
    except (OSError, ValueError):  # no usable tokenizer there: nothing to compare
        return
    if have != want:
        raise ConfigError(f"init_from_hf {hf_dir!r} has another vocabulary than the data "
                          f"(vocabulary hash {have[:12]} vs the manifest's {want[:12]}): "
                          f"its token ids would mean other words; build the data with "
                          f"--tokenizer {hf_dir}")


def eval_batch_size(config) -> int:
    return config.eval_batch_size or config.global_batch_size


# ---------------------------------------------------------------------------- model init

def load_hf_params(path: str, model_cfg: ModelConfig):
    """Parameters of a Hugging Face BERT directory (``linkbert_jax.convert.load_hf``)."""
    from linkbert_jax import convert
    numerics = {k: getattr(model_cfg, k) for k in
                ("dtype", "remat", "scan_layers", "attention", "vocab_pad_multiple",
                 "hidden_dropout_prob", "attention_probs_dropout_prob")}
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


def restore_or_init(config, mgr, model_cfg, tx, abstract, state_sh, rules):
    """(state, meta): the latest complete and valid checkpoint, else HF weights, else
    from scratch."""
    restored = checkpoints.restore_latest_valid(mgr, abstract.params, abstract.opt_state)
    if restored is not None:
        step, params, opt_state, meta = restored
        st = jax.device_put(jnp.asarray(meta["step"], jnp.int32), state_sh.step)
        log.info("resumed from checkpoint at step %d", step)
        return steps.TrainState(step=st, params=params, opt_state=opt_state), meta
    if config.init_from_hf:
        params = load_hf_params(config.init_from_hf, model_cfg)
        log.info("initialized from Hugging Face %s", config.init_from_hf)
        return steps.state_from_params(params, tx, state_sh), None
    rng = jax.random.fold_in(jax.random.key(config.seed), 0)
    return steps.init_state(model_cfg, config.seq_length, tx, rng, state_sh, rules), None


# ---------------------------------------------------------------------------- eval

def _padded(batch: dict, size: int) -> dict:
    n = len(batch["relation"])
    if n == size:
        return batch
    out = {k: np.concatenate([v, np.zeros((size - n,) + v.shape[1:], v.dtype)])
           for k, v in batch.items()}
    out["example_weight"][n:] = 0
    return out


def _any_process(flag: bool) -> bool:
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def evaluate(config, source, eval_fn, params, data_sh) -> dict:
    """The eval split, each example once (or ``eval_max_batches``); sums then means."""
    per_proc = eval_batch_size(config) // jax.process_count()
    it = source.batches(split=config.eval_split, batch_size=per_proc,
                        seq_length=config.seq_length, masking=config.masking,
                        seed=config.seed, process_index=jax.process_index(),
                        process_count=jax.process_count(), repeat=False, shuffle=False)
    totals, template, n = {}, None, 0
    while not config.eval_max_batches or n < config.eval_max_batches:
        batch = next(it, None)
        if not _any_process(batch is not None):
            break
        if batch is None:  # this process is done, others are not: a zero-weight batch
            batch = dict(template, example_weight=np.zeros_like(template["example_weight"]))
        batch = _padded(batch, per_proc)
        template = batch
        stats = jax.device_get(eval_fn(params, sharding.global_batch(batch, data_sh)))
        for k, v in stats.items():
            totals[k] = totals.get(k, 0.0) + float(v)
        n += 1
    if not totals:
        return {}
    out = {k: float(v) for k, v in objectives.summarize(totals, config.drp_weight).items()}
    out["examples"] = totals["drp_weight"]
    return out


# ---------------------------------------------------------------------------- loop

def _save(mgr, state, base_rng, step: int, force: bool = False) -> None:
    meta = {"step": int(step), "data_position": int(step),
            "process_count": jax.process_count(),
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


def components(config, model_cfg: ModelConfig, mesh):
    """``(rules, schedule, tx, abstract_state, state_shardings)`` of a config on a mesh:
    what the trainer, the benchmarks and compile checks all build the step from."""
    rules = sharding.rules_from_config(config)
    schedule = optimizer.learning_rate_schedule(config)
    tx = optimizer.make_optimizer(config)
    abstract, state_sh = steps.state_shardings(model_cfg, config.seq_length, tx, mesh, rules)
    return rules, schedule, tx, abstract, state_sh


def _run_setup(config, workdir: str, source):
    """Sections data, mesh, model, shard: everything checked before compiling."""
    check_counts(config)
    source = source if source is not None else TFRecordSource(config.data_dir)
    manifest = source.manifest()
    model_cfg = model_config_from(config, manifest)
    mesh = sharding.make_mesh(config.mesh)
    validate(config, manifest, model_cfg, mesh)
    if hasattr(source, "check"):  # optional in the source protocol
        evals = bool(config.eval_every_steps or config.eval_at_end)
        source.check(manifest, config.train_split, config.eval_split if evals else None)
    rules, schedule, tx, abstract, state_sh = components(config, model_cfg, mesh)
    if jax.process_index() == 0:  # with the resolved model (read back by export tools)
        resolved = {**config.to_dict(), "model": model_cfg.to_dict()}
        changes = checkpoints.config_changes(workdir, resolved)
        if changes:
            log.warning("%s: the config differs from the one this workdir was trained with "
                        "(the run goes on with the new one): %s", workdir, "; ".join(changes))
        checkpoints.write_config(workdir, resolved)
    return source, model_cfg, mesh, rules, schedule, tx, abstract, state_sh


def train_and_evaluate(config, workdir: str, source=None) -> steps.TrainState:
    source, model_cfg, mesh, rules, schedule, tx, abstract, state_sh = _run_setup(
        config, workdir, source)
    train_fn, eval_fn = steps.compile_steps(model_cfg, config, tx, schedule, mesh, rules,
                                            state_sh)
    data_sh = sharding.batch_sharding(mesh, rules)
    flops = metrics_log.flops_per_sequence(model_cfg, config.seq_length,
                                           config.masking.max_predictions)
    # --- compile ahead of time; log per-device memory and the FLOP ratio (docs/aot.md)
    train_fn = step_costs.compile_logged(
        train_fn, abstract, step_costs.abstract_batch(
            config.global_batch_size, config.seq_length, config.masking.max_predictions,
            data_sh), step_costs.abstract_key(sharding.replicated(mesh)),
        analytic_flops=flops * config.global_batch_size, devices=jax.devices())

    # --- restore: latest complete checkpoint, else HF weights, else from scratch
    mgr = checkpoints.manager(workdir, max_to_keep=config.keep_checkpoints,
                              async_save=config.async_checkpointing)
    state, meta = restore_or_init(config, mgr, model_cfg, tx, abstract, state_sh, rules)
    base_rng = jax.random.key(config.seed)
    if meta is not None:
        base_rng = jax.random.wrap_key_data(np.asarray(meta["rng"], np.uint32))
    start = int(jax.device_get(state.step))
    data_pos = int(meta["data_position"]) if meta else 0
    if meta and meta.get("process_count", jax.process_count()) != jax.process_count():
        log.warning("checkpoint written by %d processes, resumed by %d: the data stream is "
                    "split differently from here on (not an exact resume)",
                    meta["process_count"], jax.process_count())

    # --- input: this process's shard of the stream, resumed at the saved position
    n_proc = jax.process_count()
    it = source.batches(split=config.train_split, batch_size=config.global_batch_size // n_proc,
                        seq_length=config.seq_length, masking=config.masking, seed=config.seed,
                        process_index=jax.process_index(), process_count=n_proc,
                        start_batch=data_pos, repeat=True, shuffle=True)

    # --- metrics
    total = config.num_train_steps
    writer = metrics_log.MetricsWriter(workdir, enabled=jax.process_index() == 0)
    peak = metrics_log.peak_flops_total(jax.devices(), config.peak_flops_per_device)
    logging.info("MFU against a peak of %.1f TFLOP/s (%d %s devices%s)", peak / 1e12,
                 jax.device_count(), jax.devices()[0].device_kind,
                 ", measured 2048^3 matmul" if jax.devices()[0].device_kind.lower() == "cpu"
                 and not config.peak_flops_per_device else "")
    meter = metrics_log.Throughput(flops * config.global_batch_size,
                                   config.seq_length * config.global_batch_size, peak,
                                   start, total)
    stop = StopSignal()
    failures = orbax_faults.SaveFailures().__enter__()  # background save errors
    pending: list = []  # (step, device metrics) since the last log point
    step = start
    if start >= total and config.eval_at_end:  # a finished run: its final eval may have
        _eval_and_log(config, source, eval_fn, state, data_sh, writer, step)  # failed
    try:
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
                _check_finite(pending, mgr)
                row = metrics_log.mean_of(jax.device_get([m for _, m in pending]))
                row.update(meter.measure(step))
                writer.write(step, row)
                log.info(metrics_log.console_line(step, total, row))
                pending = []
            # --- checkpoint (only after every loss since the last one was checked)
            checkpoints.raise_if_save_failed(mgr, failures)
            preempted = stop.should_stop(step)
            if step % config.checkpoint_every_steps == 0 or step == total or preempted:
                _check_finite(pending, mgr)
                _save(mgr, state, base_rng, step, force=preempted)
            # --- eval
            if (config.eval_every_steps and step % config.eval_every_steps == 0) or (
                    config.eval_at_end and step == total):
                _eval_and_log(config, source, eval_fn, state, data_sh, writer, step)
                meter.reset(step)
            # --- preemption
            if preempted:
                log.warning("stopping at step %d after a termination signal", step)
                break
        checkpoints.raise_if_save_failed(mgr, failures, wait=True)
    finally:
        _close(mgr, failures, writer, stop)
    return state


def _eval_and_log(config, source, eval_fn, state, data_sh, writer, step: int) -> None:
    ev = evaluate(config, source, eval_fn, state.params, data_sh)
    if ev:
        writer.write(step, ev, prefix="eval_")
        log.info("eval at step %d: %s", step, _fmt(ev))


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


def _fmt(d: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in d.items())
