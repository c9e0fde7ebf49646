"""The GPU paths, checked on CPU: the arguments that cuDNN's fused attention is given
(run here through XLA's implementation of the same call), and the gathers whose
gradients are one-hot products instead of scatter-adds (issue 23)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linkbert_jax.errors import ConfigError
from linkbert_jax.model import LinkBert, ModelConfig, init_params
from linkbert_jax.ops import attention, gather
from linkbert_jax.readout import key_mask

CFG = ModelConfig(vocab_size=1001, hidden_size=48, num_hidden_layers=2,
                  num_attention_heads=3, intermediate_size=100, type_vocab_size=3)


def _batch(b=4, length=16, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, CFG.vocab_size, (b, length))
    ids[:, 1] = ids[:, 2] = 7  # rows many tokens share, as [MASK] does
    mask = np.ones((b, length), np.int32)
    mask[1, 9:] = 0
    mask[2, 3:] = 0
    mask[3, :] = 0  # a row of padding only (a padded eval batch)
    types = np.zeros((b, length), np.int32)
    types[:, 6:] = 1
    types[0, 12:] = 2
    positions = np.array([[1, 2, 5], [0, 8, 8], [1, 2, 0], [0, 0, 0]], np.int32)
    return ids, mask, types, positions


def _qkv(dtype, b=3, q=10, length=10, seed=1):
    keys = jax.random.split(jax.random.key(seed), 3)
    return [jax.random.normal(k, (b, n, 2, 8), jnp.float32).astype(dtype)
            for k, n in zip(keys, (q, length, length))]


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-6), (jnp.bfloat16, 2e-2)])
def test_padding_as_key_lengths_equals_the_masked_softmax(dtype, tol):
    q, k, v = _qkv(dtype)
    mask_BxL = np.array([[1] * 10, [1] * 4 + [0] * 6, [1] * 7 + [0] * 3])
    mask = key_mask(jnp.asarray(mask_BxL))  # [B, 1, 1, L]: cuDNN refuses it as a mask
    args = attention.mask_arguments(mask, q.shape[1])
    assert set(args) == {"key_value_seq_lengths"}
    assert args["key_value_seq_lengths"].tolist() == [10, 4, 7]
    want = attention.explicit(q, k, v, mask, 0.0, True).astype(jnp.float32)
    got = attention.fused(q, k, v, mask, "xla").astype(jnp.float32)
    np.testing.assert_allclose(got, want, atol=tol, rtol=tol)


def test_a_mask_per_query_is_given_as_the_mask():
    """Packed rows (several examples to a row) and a readout at [CLS] keep their mask."""
    q, k, v = _qkv(jnp.float32)
    segment = jnp.asarray([[1] * 4 + [2] * 6, [1] * 10, [1] * 3 + [2] * 3 + [0] * 4])
    packed = key_mask(segment_BxL=segment)  # [B, 1, L, L]
    assert set(attention.mask_arguments(packed, 10)) == {"mask"}
    np.testing.assert_allclose(attention.fused(q, k, v, packed, "xla"),
                               attention.explicit(q, k, v, packed, 0.0, True), atol=1e-6)
    at_cls = key_mask(jnp.asarray([[1] * 10, [1] * 4 + [0] * 6, [0] * 3 + [1] * 7]))
    q1 = q[:, :1]  # one query a row: the [B, 1, 1, L] mask is that query's, any pattern
    assert set(attention.mask_arguments(at_cls, 1)) == {"mask"}
    np.testing.assert_allclose(attention.fused(q1, k, v, at_cls, "xla"),
                               attention.explicit(q1, k, v, at_cls, 0.0, True), atol=1e-6)


def test_an_empty_row_counts_one_key_not_zero():
    mask = key_mask(jnp.zeros((2, 6), jnp.int32))
    assert attention.mask_arguments(mask, 6)["key_value_seq_lengths"].tolist() == [1, 1]


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("bfloat16", 5e-2)])
def test_the_model_on_the_cudnn_path_equals_the_xla_path(monkeypatch, dtype, tol):
    """The whole model with ``attention="cudnn"``, the call's implementation swapped for
    XLA's (cuDNN needs a GPU): outputs at every real position as the explicit path's."""
    monkeypatch.setitem(attention.IMPLEMENTATIONS, "cudnn", "xla")
    ids, mask, types, positions = _batch()
    cfg = CFG.replace(dtype=dtype)
    params = init_params(cfg, jax.random.key(0))
    out = {a: LinkBert(cfg.replace(attention=a)).apply(
        {"params": params}, ids, mask, types, positions) for a in ("xla", "cudnn")}
    real = mask.astype(bool)
    for name in ("last_hidden_state", "pooled_output", "drp_logits"):
        got, want = (np.asarray(out[a][name], np.float32) for a in ("cudnn", "xla"))
        if name == "last_hidden_state":
            got, want = got[real], want[real]
        else:  # the row of padding only is read nowhere
            got, want = got[:3], want[:3]
        np.testing.assert_allclose(got, want, atol=tol, rtol=tol, err_msg=name)


def _grads(gather_grad: str, dtype="float32"):
    cfg = CFG.replace(gather_grad=gather_grad, dtype=dtype)
    ids, mask, types, positions = _batch()
    params = init_params(cfg, jax.random.key(0))
    w = jax.random.normal(jax.random.key(5), (4, 3, CFG.vocab_size))

    def loss(p):
        out = LinkBert(cfg).apply({"params": p}, ids, mask, types, positions)
        mlm = out.mlm_logits[..., :CFG.vocab_size].astype(jnp.float32)
        return (jnp.sum(mlm * w) + jnp.sum(out.drp_logits * out.drp_logits)
                + jnp.sum(out.last_hidden_state.astype(jnp.float32) ** 2))
    return jax.jit(jax.grad(loss)), params


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("bfloat16", 2e-2)])
def test_gradients_by_dot_equal_the_scatters(dtype, tol):
    (by_dot, params), (by_scatter, _) = _grads("dot", dtype), _grads("scatter", dtype)
    got, want = by_dot(params), by_scatter(params)
    # against the largest gradient: some are 0 in exact arithmetic (the key biases')
    scale = max(float(np.max(np.abs(w))) for w in jax.tree_util.tree_leaves(want))
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got),
                            jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(w) / scale, atol=tol,
                                   err_msg=jax.tree_util.keystr(path))


def _scatters(gather_grad: str) -> int:
    grad, params = _grads(gather_grad)
    return grad.lower(params).as_text().count('"stablehlo.scatter"(')


def test_no_scatter_in_the_gradient_by_dot():
    """The HLO shows it: by dot no scatter at all; by scatter the word embeddings' and the
    MLM positions' (the token types' and positions' are products and slices in both)."""
    assert _scatters("dot") == 0
    assert _scatters("scatter") == 2


def test_small_table_rows_are_the_rows_exactly():
    table = jax.random.normal(jax.random.key(0), (3, 5))
    ids = jnp.asarray([[0, 2, 1, 1]])
    np.testing.assert_array_equal(gather.small_table_rows(table, ids, jnp.float32),
                                  table[ids])
    np.testing.assert_array_equal(gather.rows_by_dot(table, ids, jnp.float32), table[ids])


def test_gather_grad_is_checked():
    with pytest.raises(ConfigError, match="gather_grad must be auto|scatter|dot"):
        ModelConfig(gather_grad="atomic")
    assert not ModelConfig().gathers_by_dot  # auto, on a CPU backend
    assert ModelConfig(gather_grad="dot").gathers_by_dot
