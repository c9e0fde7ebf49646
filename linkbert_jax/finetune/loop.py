"""One seed's run: epochs of train steps, dev evaluation every epoch (or N steps) with
best-on-dev selection, then dev and test predictions of the best parameters.

Writes into its workdir: ``metrics.jsonl`` and ``tensorboard/`` (train every
``log_every_steps``, ``dev_*`` at each evaluation), ``dev_predictions.jsonl``,
``predictions.jsonl`` (test), ``results.json``; each file complete or absent.
"""
from __future__ import annotations

import json
import logging
import os

import jax
import numpy as np

from linkbert_jax import metrics_log, sharding, steps
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import data, export, train

log = logging.getLogger("linkbert_jax")


class Evaluator:
    """Predictions and metrics of a split under given parameters."""

    def __init__(self, eval_fn, setup, task_data, config):
        self.eval_fn, self.setup, self.td, self.config = eval_fn, setup, task_data, config

    def __call__(self, params, split: data.Split):
        logits = train.logits_of(self.eval_fn, params, split, self.setup,
                                 self.config.eval_batch_size,
                                 train.batch_lengths(self.setup, self.td.task, self.config,
                                                     training=False))
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


def run_seed(config, pretrained, task_data, setup, compiled, workdir: str) -> dict:
    """Fine-tune with ``config.seed`` (``compiled``: the jitted train and eval steps of
    ``setup``, shared by all seeds); returns the results (also ``results.json``)."""
    os.makedirs(workdir, exist_ok=True)
    splits, (train_fn, eval_fn) = task_data.splits, compiled
    evaluate = Evaluator(eval_fn, setup, task_data, config)
    params = train.initial_params(setup, pretrained, splits["train"], config.seed,
                                  config.random_init)
    state = steps.state_from_params(params, setup.tx, setup.state_sh)
    writer = metrics_log.MetricsWriter(workdir, enabled=jax.process_index() == 0)
    total, per_epoch = config.num_train_steps, data.steps_per_epoch(len(splits["train"]),
                                                                    config.batch_size)
    eval_every = config.eval_every_steps or per_epoch
    meter = metrics_log.Throughput(0.0, config.batch_size * config.max_seq_length, 1.0, 0,
                                   total)
    best, rng, step, pending = Selection(config.metric), jax.random.key(config.seed), 0, []
    lengths = train.batch_lengths(setup, task_data.task, config, training=True)
    for epoch in range(-(-total // per_epoch)):
        for batch in data.train_batches(splits["train"], config.batch_size, config.seed,
                                        epoch, jax.process_index(), jax.process_count(),
                                        lengths):
            state, m = train_fn(state, sharding.global_batch(batch, setup.data_sh), rng)
            step += 1
            pending.append((step, m))
            if step == 1:  # the first step compiled: not part of the rate
                jax.block_until_ready(m)
                meter.reset(1)
            if step % config.log_every_steps == 0 or step == total:
                _log_train(writer, pending, step, total, per_epoch, meter, config.batch_size)
                pending = []
            if step % eval_every == 0 or step == total:
                _, dev = evaluate(state.params, splits["validation"])
                writer.write(step, dev, prefix="dev_")
                better = best.offer(step, dev, state.params)
                log.info("dev at step %d: %s%s", step, _fmt(dev), "  (best)" if better else "")
                meter.reset(step)
            if step == total:
                break
    writer.close()
    return _finish(config, setup, evaluate, best, task_data, workdir)


def _finish(config, setup, evaluate, best: Selection, task_data, workdir: str) -> dict:
    """Dev and test predictions of the best parameters, the exported model, results."""
    splits = task_data.splits
    params = jax.tree_util.tree_map(steps.to_sharded, best.params, setup.state_sh.params)
    results = {"seed": config.seed, "best_step": best.step, "metric": config.metric,
               "dev": best.metrics}
    preds, _ = evaluate(params, splits["validation"])
    _write_predictions(os.path.join(workdir, "dev_predictions.jsonl"), splits["validation"],
                       preds)
    if "test" in splits:
        preds, test = evaluate(params, splits["test"])
        _write_predictions(os.path.join(workdir, "predictions.jsonl"), splits["test"], preds)
        results["test"] = test
    if jax.process_index() == 0:
        export.save(setup.model, best.params, os.path.join(workdir, export.MODEL_DIR),
                    task_data.tokenizer, task_data.labels, task_data.task.problem_type)
        tmp = os.path.join(workdir, "results.json.tmp")
        with open(tmp, "w") as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, os.path.join(workdir, "results.json"))
    results["params"] = best.params
    return results


def _fmt(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
