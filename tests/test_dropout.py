"""The model's dropout (16-bit draws, linkbert_jax.ops.dropout): its rate, its scaling,
its gradient, where it falls back to flax's, and that the model uses it."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linkbert_jax.model import LinkBert, ModelConfig, init_params
from linkbert_jax.ops import dropout


def _apply(rate, x, seed=0, deterministic=False):
    return dropout.Dropout(rate).apply({}, x, deterministic,
                                       rngs={"dropout": jax.random.key(seed)})


def test_threshold_rounds_the_rate_to_sixteen_bits():
    assert dropout.threshold(0.1) == 6554
    assert dropout.threshold(0.0) == 0
    assert dropout.threshold(1.0) == dropout.LEVELS


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drops_at_the_rate_and_keeps_the_mean(rate):
    x = jnp.ones((64, 128, 96), jnp.float32)
    y = np.asarray(_apply(rate, x))
    dropped = float(np.mean(y == 0))
    n = y.size  # 786,432 draws: 5 standard errors are < 0.003
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    kept = y[y != 0]
    np.testing.assert_allclose(kept, dropout.LEVELS / (dropout.LEVELS - dropout.threshold(rate)),
                               rtol=1e-6)
    assert abs(float(np.mean(y)) - 1.0) < 0.01


def test_masks_differ_across_elements_and_rngs():
    x = jnp.ones((4, 256), jnp.float32)
    a, b = np.asarray(_apply(0.5, x, 0)), np.asarray(_apply(0.5, x, 1))
    assert not np.array_equal(a, b)
    # the two halves of one 32-bit word are independent draws, not copies
    assert not np.array_equal(a[:, 0::2], a[:, 1::2])
    np.testing.assert_array_equal(a, np.asarray(_apply(0.5, x, 0)))


def test_gradient_is_the_mask_times_the_scale():
    x = jax.random.normal(jax.random.key(3), (8, 32), jnp.float32)
    y = _apply(0.25, x, seed=4)
    g = jax.grad(lambda x: jnp.sum(_apply(0.25, x, seed=4)))(x)
    np.testing.assert_allclose(np.asarray(g * x), np.asarray(y), rtol=1e-6)


def test_deterministic_and_zero_rate_are_the_identity_and_odd_axes_use_flax():
    x = jax.random.normal(jax.random.key(0), (3, 7), jnp.float32)
    np.testing.assert_array_equal(_apply(0.1, x, deterministic=True), x)
    np.testing.assert_array_equal(_apply(0.0, x), x)
    flax_y = nn.Dropout(0.3).apply({}, x, False, rngs={"dropout": jax.random.key(5)})
    np.testing.assert_array_equal(_apply(0.3, x, seed=5), flax_y)  # last axis 7: flax's
    assert float(jnp.max(jnp.abs(_apply(1.0, jnp.ones((2, 4)))))) == 0.0


def test_the_model_trains_with_it_and_bf16_keeps_its_dtype():
    cfg = ModelConfig(vocab_size=101, hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=64, dtype="bfloat16")
    params = init_params(cfg, jax.random.key(0), seq_len=8)
    ids = jnp.arange(16, dtype=jnp.int32).reshape(2, 8) % 101
    run = lambda seed: LinkBert(cfg).apply(  # noqa: E731
        {"params": params}, ids, deterministic=False,
        rngs={"dropout": jax.random.key(seed)}).last_hidden_state
    a, b = run(0), run(1)
    assert a.dtype == jnp.bfloat16
    assert not np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(run(0), np.float32))
