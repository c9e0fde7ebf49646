"""Fine-tune one seed, in named sections: checks, mesh, model, shard, steps, loop
(update, log, eval + best-on-dev selection), predictions.

The step is the pretraining pattern (``linkbert_jax.pretrain.steps``): a pure
``(state, batch, rng) -> (state, metrics)`` (the schedule's numbers bound by
``steps.with_schedule``) with ``rng = fold_in(rng, step)``, gradient
accumulation over microbatches, the state donated, parameters and batches sharded by the
same logical axis rules on the same mesh, AdamW + warmup + linear decay
(``linkbert_jax.optimizer``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from linkbert_jax import optimizer, sharding
from linkbert_jax.data import files
from linkbert_jax.infra import metrics_log
from linkbert_jax.pretrain import steps
from linkbert_jax.pretrain.recipe import check_counts
from linkbert_jax.errors import ConfigError, NonFiniteLossError
from linkbert_jax.finetune import data, packing

log = logging.getLogger("linkbert_jax")


@dataclasses.dataclass
class TaskRecipe:
    """Fine-tuning's step recipe (:func:`build`): the task model's counterpart of
    pretraining's ``linkbert_jax.pretrain.recipe.Recipe``."""
    model: nn.Module
    mesh: object
    rules: tuple
    tx: object  # the optimizer: its state's layout (the step builds its own)
    state_sh: object
    data_sh: object


# ---------------------------------------------------------------------------- checks

def resolve_steps(config, num_train: int):
    """A copy of ``config`` with ``num_train_steps`` resolved: as given when > 0
    (``num_train_epochs`` is then ignored, as HF Trainer's ``max_steps``), else from
    the epochs: ceil(epochs x steps/epoch)."""
    if config.num_train_steps < 0:
        raise ConfigError(f"num_train_steps is {config.num_train_steps}: it must be > 0, "
                          f"or 0 to train num_train_epochs epochs (--config.num_train_steps)")
    config = config.copy_and_resolve_references()
    if config.num_train_steps == 0:
        per_epoch = data.steps_per_epoch(num_train, config.batch_size)
        config.num_train_steps = max(1, math.ceil(config.num_train_epochs * per_epoch))
    return config


def validate(config, model_cfg, tokenizer) -> None:
    """Everything that would otherwise fail deep inside compilation, as one message."""
    check_counts(config)  # the step counts it has (num_train_steps resolved)
    mesh = sharding.make_mesh(config.mesh)
    dp = sharding.data_parallel_size(mesh, sharding.rules_from_config(config))
    for name, b, unit in (("batch_size", config.batch_size, dp * config.microbatches),
                          ("eval_batch_size", config.eval_batch_size, dp)):
        if b <= 0 or b % unit or b % jax.process_count():
            raise ConfigError(f"{name} {b} is not divisible by {unit} (data-parallel size "
                              f"{dp} x microbatches) and {jax.process_count()} processes")
    if int(config.pack_shapes) < 1:
        raise ConfigError(f"pack_shapes {config.pack_shapes}: it must be >= 1 "
                          f"(--config.pack_shapes)")
    if config.max_seq_length > model_cfg.max_position_embeddings:
        raise ConfigError(f"max_seq_length {config.max_seq_length} > the model's "
                          f"max_position_embeddings {model_cfg.max_position_embeddings}")
    if len(tokenizer) > model_cfg.vocab_size:
        raise ConfigError(f"the tokenizer has {len(tokenizer)} tokens but the model's "
                          f"vocabulary {model_cfg.vocab_size}: not the model's tokenizer; "
                          f"pass --tokenizer DIR")


# ---------------------------------------------------------------------------- model, shard

def _example_inputs(split: data.Split):
    return tuple(jnp.asarray(split.arrays[k][:1]) for k in data.INPUTS)


def build(config, pretrained, task_data) -> TaskRecipe:
    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.rules_from_config(config)
    dropout = (config.classifier_dropout if config.classifier_dropout >= 0
               else pretrained.config.hidden_dropout_prob)
    model = task_data.task.model_cls(pretrained.config, task_data.num_outputs, dropout)
    tx = optimizer.make_optimizer(config)
    inputs = _example_inputs(task_data.splits["train"])
    boxed = jax.eval_shape(lambda r: model.init(r, *inputs)["params"], jax.random.key(0))
    _, state_sh = steps.state_shardings_from_boxed(boxed, tx, mesh, rules)
    return TaskRecipe(model, mesh, rules, tx, state_sh,
                      sharding.batch_sharding(mesh, rules))


def initial_params(setup: TaskRecipe, pretrained, split: data.Split, seed: int,
                   random_init: bool = False) -> dict:
    """The model's own init (seeded: the head, and the encoder when ``random_init``),
    with the pretrained encoder put in. Without ``random_init`` the compiled init returns
    the head alone, so XLA drops the encoder's draws and the forward pass (an init that
    compiles in a fraction of the time; the head's values are the same)."""
    inputs = _example_inputs(split)

    def init(rng):
        params = nn.unbox(setup.model.init(rng, *inputs)["params"])
        return params if random_init else {k: v for k, v in params.items() if k != "bert"}

    params = jax.tree_util.tree_map(np.asarray, jax.jit(init)(jax.random.key(seed)))
    if random_init:
        return params
    fresh = setup.state_sh.params["bert"]  # the encoder's tree (of shardings)
    for name in fresh:
        if (name not in pretrained.params or jax.tree_util.tree_structure(
                pretrained.params[name]) != jax.tree_util.tree_structure(fresh[name])):
            raise ConfigError(f"pretrained {name} weights do not fit the task model")
    return {**params, "bert": {name: pretrained.params[name] for name in fresh}}


def batch_lengths(setup: TaskRecipe, task, config, training: bool) -> data.Lengths:
    """How ``task``'s batches are shaped for ``setup``'s steps (packed batches hold a
    group of rows per data-parallel shard and, in training, per microbatch)."""
    return task.lengths(config, sharding.data_parallel_size(setup.mesh, setup.rules),
                        int(config.microbatches) if training else 1)


# ---------------------------------------------------------------------------- steps

def _logits(model, params, batch, rng, deterministic):
    inputs = {k: batch[k] for k in data.MODEL_INPUTS if k in batch}
    return model.apply({"params": params}, **inputs, deterministic=deterministic,
                       rngs=None if deterministic else {"dropout": rng})


def train_step(state, batch, rng, numbers, *, model, loss, optimizer_of, rules,
               microbatches=1):
    """``optimizer_of(numbers)``: ``(tx, schedule)``, as in ``pretrain.steps.train_step``."""
    step_rng = jax.random.fold_in(rng, state.step)
    flat = packing.examples(batch)
    count = jnp.maximum(loss.count(flat["labels"], flat["example_weight"]), 1.0)

    def loss_fn(params, mb, r):
        with nn.logical_axis_rules(rules):
            logits = _logits(model, params, mb, r, deterministic=False)
        mb = packing.examples(mb)
        total = loss.total(logits, mb["labels"], mb["example_weight"])
        return total / count, total

    grads, total = steps.accumulate(jax.grad(loss_fn, has_aux=True), state.params, batch,
                                    step_rng, microbatches)
    tx, schedule = optimizer_of(numbers)
    return steps.apply_gradients(state, _no_padding_row_grad(grads, model.config.pad_token_id),
                                 {"loss": total / count}, tx=tx, schedule=schedule)


def _no_padding_row_grad(grads, pad_id: int):
    """Hugging Face's ``nn.Embedding(padding_idx=pad_token_id)``: the padding row of the
    word embeddings gets no gradient. It matters where padded positions carry a loss
    (QA's start/end softmax runs over every position, padding included)."""
    emb = grads["bert"]["embeddings"]["word_embeddings"]
    emb = {**emb, "embedding": emb["embedding"].at[pad_id].set(0.0)}
    bert = {**grads["bert"], "embeddings": {**grads["bert"]["embeddings"],
                                            "word_embeddings": emb}}
    return {**grads, "bert": bert}


def eval_step(params, batch, *, model, rules):
    with nn.logical_axis_rules(rules):
        return _logits(model, params, batch, None, deterministic=True)


def compile_steps(setup: TaskRecipe, loss, config):
    config = config.copy_and_resolve_references()  # what the step reads, frozen now
    repl = sharding.replicated(setup.mesh)
    train = jax.jit(functools.partial(
        train_step, model=setup.model, loss=loss,
        optimizer_of=functools.partial(optimizer.with_numbers, config), rules=setup.rules,
        microbatches=int(config.microbatches)),
        in_shardings=(setup.state_sh, setup.data_sh, repl, repl),
        out_shardings=(setup.state_sh, repl), donate_argnums=(0,))
    evaluate = jax.jit(functools.partial(eval_step, model=setup.model, rules=setup.rules),
                       in_shardings=(setup.state_sh.params, setup.data_sh),
                       out_shardings=repl)
    return (steps.under_mesh(steps.with_schedule(train, config), setup.mesh),
            steps.under_mesh(evaluate, setup.mesh))


def logits_of(eval_fn, params, split: data.Split, setup: TaskRecipe, batch_size: int,
              lengths: data.Lengths = data.Lengths(), stop=None):
    """Logits of every row of ``split``, in order, on the host (per-token logits of
    batches cut shorter padded back to the split's length with zeros); None when
    ``stop`` (a ``linkbert_jax.infra.preemption.StopSignal``) asks to stop between batches."""
    out, L = [], split.arrays["input_ids"].shape[-1]
    for i, batch in enumerate(data.eval_batches(split, batch_size, jax.process_index(),
                                                jax.process_count(), lengths)):
        if stop is not None and stop.should_stop(i):
            log.warning("evaluation interrupted by a termination signal (batch %d)", i)
            return None
        x = np.asarray(jax.device_get(eval_fn(params, sharding.global_batch(batch,
                                                                            setup.data_sh))))
        if x.ndim == 3 and x.shape[1] < L:  # [B, l, K]
            x = np.pad(x, ((0, 0), (0, L - x.shape[1]), (0, 0)))
        out.append(x)
    return np.concatenate(out)[:len(split)]


def write_jsonl(path: str, rows) -> None:
    """All rows, or nothing: a temp file renamed into place."""
    with files.atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def check_finite(step: int, loss: float) -> None:
    if not np.isfinite(loss):
        raise NonFiniteLossError(f"loss is {loss} at step {step}: fine-tuning stopped; "
                                 f"lower the learning rate or check the data")


def progress_line(step, total, epoch, m, rate) -> str:
    eta = rate.get("eta_sec", float("nan"))
    eta_s = metrics_log.time.strftime("%H:%M:%S", metrics_log.time.gmtime(eta)) \
        if math.isfinite(eta) else "?"
    return (f"step {step}/{total}  epoch {epoch:.2f}  loss {m['loss']:.4f}  "
            f"lr {m['learning_rate']:.2e}  |g| {m['grad_norm']:.2f}  "
            f"{rate['steps_per_sec']:.2f} st/s  {rate['examples_per_sec']:.1f} ex/s  "
            f"eta {eta_s}")
