"""One seed's run: epochs of train steps, dev evaluation every epoch (or N steps) with
best-on-dev selection, then dev and test predictions of the best parameters.

Writes into its workdir: ``metrics.jsonl`` and ``tensorboard/`` (train every
``log_every_steps``, ``dev_*`` at each evaluation), ``dev_predictions.jsonl``,
``predictions.jsonl`` (test), ``results.json``; each file complete or absent.
"""
from __future__ import annotations

import logging
import os

import jax
import numpy as np

from linkbert_jax import sharding
from linkbert_jax.checkpoint import checkpoints, orbax_faults
from linkbert_jax.data import files
from linkbert_jax.infra import metrics_log
from linkbert_jax.pretrain import steps
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import data, export, resume, train

log = logging.getLogger("linkbert_jax")


class Evaluator:
    """Predictions and metrics of a split under given parameters; None when ``stop``
    (``linkbert_jax.infra.preemption.StopSignal``) interrupts it."""

    def __init__(self, eval_fn, setup, task_data, config, stop=resume.NeverStop):
        self.eval_fn, self.setup, self.td, self.config = eval_fn, setup, task_data, config
        self.stop = stop

    def __call__(self, params, split: data.Split):
        logits = train.logits_of(self.eval_fn, params, split, self.setup,
                                 self.config.eval_batch_size,
                                 train.batch_lengths(self.setup, self.td.task, self.config,
                                                     training=False), self.stop)
        if logits is None:
            return None
        preds = self.td.task.predict(logits, split, self.td.labels, self.config)
        scores = (self.td.task.score(preds, split, self.td.labels, self.config)
                  if split.has_labels else {})
        return preds, scores


def _ids(split: data.Split) -> list:
    ex = split.examples
    return list(ex["id"]) if "id" in ex.column_names else list(range(len(ex)))


def _write_predictions(path: str, split: data.Split, preds: list) -> None:
    if jax.process_index() == 0:
        train.write_jsonl(path, ({"id": i, "prediction": p} for i, p in zip(_ids(split), preds)))


class Selection:
    """Keeps the best dev score and a host copy of its parameters."""

    def __init__(self, metric: str):
        self.metric, self.score, self.step, self.metrics, self.params = metric, None, 0, {}, None

    def offer(self, step: int, metrics: dict, params) -> bool:
        if self.metric not in metrics:
            raise ConfigError(f"metric {self.metric!r} is not computed for this task; set "
                              f"--config.metric to one of {sorted(metrics)}")
        if self.score is not None and metrics[self.metric] <= self.score:
            return False
        self.score, self.step, self.metrics = metrics[self.metric], step, metrics
        self.params = jax.tree_util.tree_map(np.asarray, jax.device_get(params))
        return True

    def saved(self) -> dict | None:
        """What a checkpoint keeps of it besides the parameters."""
        return None if self.params is None else {
            "score": float(self.score), "step": self.step,
            "metrics": {k: float(v) for k, v in self.metrics.items()}}

    def restore(self, saved: dict | None, params) -> None:
        if saved is not None:
            self.score, self.step, self.metrics = saved["score"], saved["step"], saved["metrics"]
            self.params = params


def _log_train(writer, pending, step, total, per_epoch, meter, batch_size):
    rows = jax.device_get([m for _, m in pending])
    for (s, _), m in zip(pending, rows):
        train.check_finite(s, float(m["loss"]))
    rate = meter.measure(step)
    rate["examples_per_sec"] = rate["steps_per_sec"] * batch_size
    mean = metrics_log.mean_of(rows)
    writer.write(step, {**mean, "steps_per_sec": rate["steps_per_sec"],
                        "examples_per_sec": rate["examples_per_sec"]})
    log.info(train.progress_line(step, total, step / per_epoch, mean, rate))


def run_seed(config, pretrained, task_data, setup, compiled, workdir: str, *,
             stop=resume.NeverStop, origin: dict | None = None) -> dict | None:
    """Fine-tune with ``config.seed`` (``compiled``: the jitted train and eval steps of
    ``setup``, shared by all seeds); returns the results (also ``results.json``), or None
    when ``stop`` stopped it (saved: the same call resumes). A seed finished by the same
    run (``origin``: where its inputs come from) is not trained again."""
    os.makedirs(workdir, exist_ok=True)
    run = resume.record(config, origin or {})
    done = resume.finished(workdir, run)
    if done is not None:
        log.info("seed %d: finished earlier (%s): reused", config.seed, workdir)
        return done
    seed_run = SeedRun(config, pretrained, task_data, setup, compiled, workdir, stop, run)
    try:
        return seed_run.run()
    finally:
        seed_run.close()


class SeedRun:
    """One seed's loop: update, log, eval + best-on-dev selection, checkpoint, stop."""

    def __init__(self, config, pretrained, task_data, setup, compiled, workdir, stop, run):
        self.c, self.td, self.setup, self.workdir, self.stop, self.run_record = (
            config, task_data, setup, workdir, stop, run)
        self.train_fn, eval_fn = compiled
        self.evaluate = Evaluator(eval_fn, setup, task_data, config, stop)
        self.total = config.num_train_steps
        self.per_epoch = data.steps_per_epoch(len(task_data.splits["train"]), config.batch_size)
        self.eval_every = config.eval_every_steps or self.per_epoch
        self.mgr = resume.manager(workdir)
        self.failures = orbax_faults.SaveFailures().__enter__()  # background save errors
        self.best, self.writer = Selection(config.metric), None
        try:
            self._start(pretrained)
        except BaseException:
            self.close()
            raise
        if jax.process_index() == 0 and metrics_log.drop_rows_after(workdir, self.step):
            log.info("%s/metrics.jsonl: rows after step %d dropped (written again)",
                     workdir, self.step)
        self.writer = metrics_log.MetricsWriter(workdir, enabled=jax.process_index() == 0)
        self.meter = metrics_log.Throughput(0.0, config.batch_size * config.max_seq_length,
                                            1.0, self.step, self.total)

    def _start(self, pretrained) -> None:
        """The latest checkpoint of this run, else the pretrained encoder + a seeded head."""
        params = train.initial_params(self.setup, pretrained, self.td.splits["train"],
                                      self.c.seed, self.c.random_init)
        self.state = steps.state_from_params(params, self.setup.tx, self.setup.state_sh)
        self.rng, self.step, self.pending, self.eval_owed = (
            jax.random.key(self.c.seed), 0, [], False)
        got = resume.restore(self.mgr, self.state, self.run_record)
        if got is not None:
            self.state, self.rng, self.step, self.pending, self.eval_owed = (
                got.state, got.rng, got.step, got.pending, got.eval_owed)
            self.best.restore(got.best, got.best_params)
            log.info("seed %d: resumed from %s at step %d", self.c.seed, self.mgr.directory,
                     self.step)

    def _batches(self):
        """The training batches from the data position (``step`` batches consumed)."""
        epoch, first = divmod(self.step, self.per_epoch)
        lengths = train.batch_lengths(self.setup, self.td.task, self.c, training=True)
        for e in range(epoch, -(-self.total // self.per_epoch)):
            yield from data.train_batches(self.td.splits["train"], self.c.batch_size,
                                          self.c.seed, e, jax.process_index(),
                                          jax.process_count(), lengths,
                                          first if e == epoch else 0)

    def run(self) -> dict | None:
        if self.eval_owed and not self._eval():
            return None
        start = self.step
        for batch in (self._batches() if self.step < self.total else ()):
            self.state, m = self.train_fn(self.state, sharding.global_batch(
                batch, self.setup.data_sh), self.rng)
            self.step += 1
            self.pending.append((self.step, m))
            if self.step == start + 1:  # the first step compiled: not part of the rate
                jax.block_until_ready(m)
                self.meter.reset(self.step)
            if not self._after_step():
                return None
            if self.step == self.total:
                break
        checkpoints.raise_if_save_failed(self.mgr, self.failures, wait=True)
        results = _finish(self.c, self.setup, self.evaluate, self.best, self.td,
                          self.workdir, self.run_record)
        if results is not None:
            resume.discard(self.mgr, self.workdir)
        return results

    def _after_step(self) -> bool:
        """Log, eval, checkpoint; False when a signal stopped the run (saved)."""
        step, c = self.step, self.c
        if step % c.log_every_steps == 0 or step == self.total:
            _log_train(self.writer, self.pending, step, self.total, self.per_epoch,
                       self.meter, c.batch_size)
            self.pending = []
        preempted = self.stop.should_stop(step)
        self.eval_owed = step % self.eval_every == 0 or step == self.total
        if self.eval_owed and not preempted:
            preempted = not self._eval()
        if step % c.checkpoint_every_steps == 0 or step == self.total or preempted:
            checkpoints.raise_if_save_failed(self.mgr, self.failures)
            best = (None if self.best.params is None else jax.tree_util.tree_map(
                steps.to_sharded, self.best.params, self.setup.state_sh.params))
            resume.save(self.mgr, step, self.state, self.rng, self.best.saved(), best,
                        self.pending, self.eval_owed, self.run_record, force=preempted)
        if preempted:
            log.warning("stopped at step %d after a termination signal (saved%s): run the "
                        "same command again to resume", step,
                        ", its evaluation still to do" if self.eval_owed else "")
        return not preempted

    def _eval(self) -> bool:
        """The dev evaluation at this step; False when a signal interrupted it."""
        out = self.evaluate(self.state.params, self.td.splits["validation"])
        if out is None:
            return False
        dev = out[1]
        self.writer.write(self.step, dev, prefix="dev_")
        better = self.best.offer(self.step, dev, self.state.params)
        log.info("dev at step %d: %s%s", self.step, _fmt(dev), "  (best)" if better else "")
        self.meter.reset(self.step)
        self.eval_owed = False
        return True

    def close(self) -> None:
        """Saves in flight finished (their errors were reported, or an error is already
        on its way out), everything released."""
        try:
            self.mgr.wait_until_finished()
        except Exception:  # noqa: BLE001
            pass
        self.mgr.close()
        self.failures.__exit__(None, None, None)
        if self.writer is not None:
            self.writer.close()


def _finish(config, setup, evaluate, best: Selection, task_data, workdir: str,
            run: dict) -> dict | None:
    """Dev and test predictions of the best parameters, the exported model, results
    (None when a signal interrupted the predictions: the final checkpoint stays)."""
    splits = task_data.splits
    params = jax.tree_util.tree_map(steps.to_sharded, best.params, setup.state_sh.params)
    results = {"seed": config.seed, "best_step": best.step, "metric": config.metric,
               "dev": best.metrics}
    out = {}
    for name in [k for k in ("validation", "test") if k in splits]:
        out[name] = evaluate(params, splits[name])
        if out[name] is None:
            log.warning("stopped after a termination signal, before the predictions: run "
                        "the same command again to write them")
            return None
    _write_predictions(os.path.join(workdir, "dev_predictions.jsonl"), splits["validation"],
                       out["validation"][0])
    if "test" in splits:
        _write_predictions(os.path.join(workdir, "predictions.jsonl"), splits["test"],
                           out["test"][0])
        results["test"] = out["test"][1]
    if jax.process_index() == 0:
        export.save(setup.model, best.params, os.path.join(workdir, export.MODEL_DIR),
                    task_data.tokenizer, task_data.labels, task_data.task.problem_type)
        files.write_json(os.path.join(workdir, resume.RESULTS),
                         {**results, resume.RUN_KEY: run})
    return results


def _fmt(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
