"""Train state, sharded initialization, and the jitted train / eval steps.

``train_step(state, batch, rng, numbers) -> (state, metrics)``: pure; the dropout key is
``fold_in(rng, state.step)`` (then per microbatch), so a resumed run draws the same keys;
``numbers`` are the learning-rate schedule's, an argument so that one compiled program
serves every learning rate and run length (:func:`with_schedule` binds them: the
compiled steps are called ``(state, batch, rng)``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from linkbert_jax import objectives, optimizer, sharding
from linkbert_jax.model import LinkBert, ModelConfig


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer updates done
    params: Any
    opt_state: Any


def _forward(model: LinkBert, params, batch, rng, *, deterministic: bool):
    return model.apply(
        {"params": params}, batch["input_ids"], batch["attention_mask"],
        batch["token_type_ids"], batch["masked_positions"], deterministic=deterministic,
        rngs=None if deterministic else {"dropout": rng})


# ---------------------------------------------------------------------------- init

def abstract_boxed_params(model_config: ModelConfig, seq_length: int):
    """Shapes + logical partitioning of the parameters, without allocating them."""
    model = LinkBert(model_config)
    ids = jnp.zeros((1, seq_length), jnp.int32)
    return jax.eval_shape(
        lambda r: model.init(r, ids, deterministic=True)["params"], jax.random.key(0))


def state_shardings(model_config: ModelConfig, seq_length: int, tx, mesh, rules):
    """(abstract TrainState with shardings, TrainState of NamedShardings)."""
    return state_shardings_from_boxed(abstract_boxed_params(model_config, seq_length), tx,
                                      mesh, rules)


def state_shardings_from_boxed(boxed, tx, mesh, rules):
    """:func:`state_shardings` for any model's abstract boxed parameters (task models)."""
    params_sh = sharding.shardings_from_boxed(boxed, mesh, rules)
    params_abs = nn.unbox(boxed)
    opt_abs = jax.eval_shape(tx.init, params_abs)
    repl = sharding.replicated(mesh)
    opt_sh = optax.tree_map_params(tx, lambda _, s: s, opt_abs, params_sh,
                                   transform_non_params=lambda _: repl)
    shard = TrainState(step=repl, params=params_sh, opt_state=opt_sh)
    abstract = TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=params_abs,
                          opt_state=opt_abs)
    abstract = jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shard)
    return abstract, shard


def init_state(model_config: ModelConfig, seq_length: int, tx, rng, shardings_, rules):
    """Parameters and optimizer state born sharded: ``jit(init, out_shardings=...)``."""
    model = LinkBert(model_config)

    def init(r):
        ids = jnp.zeros((1, seq_length), jnp.int32)
        with nn.logical_axis_rules(rules):
            params = nn.unbox(model.init(r, ids, deterministic=True)["params"])
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=tx.init(params))

    return jax.jit(init, out_shardings=shardings_)(rng)


def state_from_params(params, tx, shardings_):
    """A fresh TrainState around given (e.g. Hugging Face) parameters, sharded."""
    params = jax.tree_util.tree_map(to_sharded, params, shardings_.params)
    opt_state = jax.jit(tx.init, out_shardings=shardings_.opt_state)(params)
    step = jax.device_put(jnp.zeros((), jnp.int32), shardings_.step)
    return TrainState(step=step, params=params, opt_state=opt_state)


def to_sharded(x, s):
    """Host array present on every process -> global array with sharding ``s``."""
    import numpy as np
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])


# ---------------------------------------------------------------------------- steps

def _microbatched(batch: dict, k: int) -> dict:
    """[B, ...] -> [k, B/k, ...], microbatch j = rows j, j+k, ... so every device keeps
    its own rows (no data movement under batch sharding)."""
    def split(x):
        return jnp.swapaxes(x.reshape((x.shape[0] // k, k) + x.shape[1:]), 0, 1)
    return jax.tree_util.tree_map(split, batch)


def _grads_and_stats(params, batch, rng, *, model, rules, microbatches, drp_weight):
    norm = objectives.normalizers(batch)
    k = microbatches

    def loss_fn(p, mb, r):
        with nn.logical_axis_rules(rules):
            out = _forward(model, p, mb, r, deterministic=False)
        stats = objectives.batch_stats(out, mb)
        return objectives.loss_from_stats(stats, norm, drp_weight), stats

    return accumulate(jax.grad(loss_fn, has_aux=True), params, batch, rng, k)


def accumulate(grad_fn: Callable, params, batch: dict, rng, k: int):
    """``grad_fn(params, microbatch, rng) -> (grads, stats)`` summed over ``k``
    microbatches (a scan; microbatch ``j`` draws ``fold_in(rng, j)``). ``grad_fn`` must
    scale its loss by the *global* batch's denominators so that the sums are the
    gradient of the whole batch."""
    if k == 1:
        return grad_fn(params, batch, rng)

    def body(carry, xs):
        j, mb = xs
        g, s = grad_fn(params, mb, jax.random.fold_in(rng, j))
        return jax.tree_util.tree_map(jnp.add, carry, (g, s)), None

    zeros = jax.tree_util.tree_map(
        jnp.zeros_like, jax.eval_shape(grad_fn, params, jax.tree_util.tree_map(
            lambda x: x[0], _microbatched(batch, k)), rng))
    (grads, stats), _ = jax.lax.scan(body, zeros, (jnp.arange(k), _microbatched(batch, k)))
    return grads, stats


def train_step(state: TrainState, batch: dict, rng, numbers, *, model, optimizer_of,
               rules, microbatches: int = 1, drp_weight: float = 1.0
               ) -> tuple[TrainState, dict]:
    """``optimizer_of(numbers)``: ``(tx, schedule)`` on the schedule's ``numbers``
    (``optimizer.with_numbers``)."""
    step_rng = jax.random.fold_in(rng, state.step)
    grads, stats = _grads_and_stats(state.params, batch, step_rng, model=model, rules=rules,
                                    microbatches=microbatches, drp_weight=drp_weight)
    tx, schedule = optimizer_of(numbers)
    return apply_gradients(state, grads, objectives.summarize(stats, drp_weight), tx=tx,
                           schedule=schedule)


def apply_gradients(state: TrainState, grads, metrics: dict, *, tx, schedule: Callable
                    ) -> tuple[TrainState, dict]:
    """The optimizer update of every train step, with grad/param norms and the learning
    rate added to ``metrics``."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads), param_norm=optax.tree.norm(params),
                   learning_rate=schedule(state.step))
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params, batch: dict, *, model, rules) -> dict:
    """Summed stats (not means) so eval batches, devices and hosts add up exactly."""
    with nn.logical_axis_rules(rules):
        out = _forward(model, params, batch, None, deterministic=True)
    return objectives.batch_stats(out, batch)


def compile_steps(model_config: ModelConfig, config, mesh, rules,
                  state_sh) -> tuple[Callable, Callable]:
    """jit the two steps with explicit in/out shardings; the train state is donated. The
    train step is called ``(state, batch, rng)``: :func:`with_schedule` passes the
    learning-rate schedule's numbers."""
    config = config.copy_and_resolve_references()  # what the step reads, frozen now
    model = LinkBert(model_config)
    data_sh = sharding.batch_sharding(mesh, rules)
    repl = sharding.replicated(mesh)
    train = jax.jit(
        functools.partial(train_step, model=model,
                          optimizer_of=functools.partial(optimizer.with_numbers, config),
                          rules=rules, microbatches=int(config.microbatches),
                          drp_weight=float(config.drp_weight)),
        in_shardings=(state_sh, data_sh, repl, repl), out_shardings=(state_sh, repl),
        donate_argnums=(0,))
    evaluate = jax.jit(functools.partial(eval_step, model=model, rules=rules),
                       in_shardings=(state_sh.params, data_sh), out_shardings=repl)
    return under_mesh(with_schedule(train, config), mesh), under_mesh(evaluate, mesh)


def with_schedule(f, config) -> Callable:
    """``f(state, batch, rng, numbers)`` called ``(state, batch, rng)``, ``numbers`` being
    ``config``'s (``optimizer.schedule_numbers``): one compiled program for every learning
    rate and run length. A jitted ``f``'s ``.trace`` and ``.lower`` are bound too; what
    they compile still takes ``numbers``: bind it with this again."""
    numbers = optimizer.schedule_numbers(config)

    @functools.wraps(f)
    def bound(state, batch, rng):
        return f(state, batch, rng, numbers)
    if hasattr(f, "lower"):
        bound.trace, bound.lower = with_schedule(f.trace, config), with_schedule(f.lower, config)
    return bound


def under_mesh(fn: Callable, mesh) -> Callable:
    """Trace (and run) ``fn`` with ``mesh`` in context so the model's logical activation
    constraints resolve to mesh axes; so do its ahead-of-time ``.trace`` and ``.lower``."""
    def in_mesh(f):
        @functools.wraps(f)
        def wrapped(*args, **kwargs):
            with jax.set_mesh(mesh):
                return f(*args, **kwargs)
        return wrapped

    wrapped = in_mesh(fn)
    wrapped.trace, wrapped.lower = in_mesh(fn.trace), in_mesh(fn.lower)
    return wrapped
