"""The Flax model against Hugging Face PyTorch BERT, and its numerics options."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linkbert_jax import architectures
from linkbert_jax.hf import convert, hf_torch
from linkbert_jax.finetune import packing
from linkbert_jax.hf.param_mapping import count_params
from linkbert_jax.model import LinkBert, ModelConfig, init_params
from linkbert_jax.readout import Readout

import torch
import transformers

CONFIGS = {
    # odd sizes: head dim 16, intermediate not a multiple of anything, vocab not padded evenly
    "odd": dict(vocab_size=1001, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                intermediate_size=100),
    "tiny": dict(architectures.ARCHITECTURES["tiny"]),
    # another activation, 3 token types, no vocab padding, short positions
    "gelu_new": dict(vocab_size=96, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=64, hidden_act="gelu_new", type_vocab_size=3,
                     max_position_embeddings=40, vocab_pad_multiple=1),
}


def random_params(cfg: ModelConfig, seed: int = 0):
    """Init params with every leaf made non-trivial (biases, LayerNorm, MLM bias random)."""
    init = jax.jit(lambda key: init_params(cfg, key))  # jitted: much faster than eager
    params = jax.tree_util.tree_map(np.asarray, init(jax.random.key(seed)))
    rng = np.random.default_rng(seed)

    def perturb(path, x):
        name = jax.tree_util.keystr(path)
        if "scale" in name:
            return (1.0 + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)
        if "bias" in name:
            return (0.1 * rng.standard_normal(x.shape)).astype(np.float32)
        return x

    return jax.tree_util.tree_map_with_path(perturb, params)


def make_batch(cfg: ModelConfig, batch=3, length=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.vocab_size, (batch, length))
    mask = np.ones((batch, length), np.int64)
    mask[1, 7:] = 0  # padding in the batch
    mask[2, 3:] = 0
    types = np.zeros((batch, length), np.int64)
    types[:, 5:] = 1
    if cfg.type_vocab_size > 2:
        types[0, 9:] = 2
    return ids, mask, types


def hf_pretraining(cfg: ModelConfig, params):
    """``BertForPreTraining`` with our weights (eager attention), and the DRP head."""
    hf_cfg = hf_torch.config_to_hf(cfg)
    hf_cfg._attn_implementation = "eager"
    model = transformers.BertForPreTraining(hf_cfg).eval()
    sd = {k: torch.from_numpy(np.array(v))
          for k, v in convert.to_hf_state_dict(cfg, params).items()}
    drp = torch.nn.Linear(cfg.hidden_size, cfg.num_relations)
    drp.load_state_dict({"weight": sd.pop("drp.weight"), "bias": sd.pop("drp.bias")})
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # decoder.weight is tied to the word embeddings (not in the export, as in HF's own).
    assert sorted(missing) == ["cls.predictions.decoder.weight", "cls.seq_relationship.bias",
                               "cls.seq_relationship.weight"]
    assert unexpected == []
    dec = model.cls.predictions.decoder
    assert dec.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    assert torch.equal(dec.bias, model.cls.predictions.bias)
    return model, drp


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parity_with_hf_bert_for_pretraining(name):
    cfg = ModelConfig(**CONFIGS[name])
    params = random_params(cfg)
    ids, mask, types = make_batch(cfg)
    pos = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)  # MLM logits everywhere
    apply = jax.jit(lambda p: LinkBert(cfg).apply({"params": p}, ids, mask, types, pos,
                                                  deterministic=True))
    out = apply(params)

    model, drp = hf_pretraining(cfg, params)
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x))  # noqa: E731
    with torch.no_grad():
        ref = model(input_ids=t(ids), attention_mask=t(mask), token_type_ids=t(types),
                    output_hidden_states=True)
        pooled = model.bert.pooler(ref.hidden_states[-1])
        drp_ref = drp(pooled)
    diffs = {
        "hidden": max_diff(out.last_hidden_state, ref.hidden_states[-1]),
        "pooled": max_diff(out.pooled_output, pooled),
        "mlm": max_diff(np.asarray(out.mlm_logits)[..., :cfg.vocab_size],
                        ref.prediction_logits),
        "drp": max_diff(out.drp_logits, drp_ref),
    }
    print(name, diffs)
    assert all(v < 1e-5 for v in diffs.values()), diffs
    # Padded vocabulary columns can never be predicted.
    assert np.all(np.isneginf(np.asarray(out.mlm_logits)[..., cfg.vocab_size:]))
    assert out.mlm_logits.shape == ids.shape + (cfg.padded_vocab_size,)
    assert out.drp_logits.shape == (ids.shape[0], 3)


@pytest.fixture(scope="module")
def odd():
    cfg = ModelConfig(**CONFIGS["odd"])
    params = random_params(cfg, seed=1)
    ids, mask, types = make_batch(cfg, seed=1)
    pos = np.array([[0, 2, 4], [1, 3, 6], [0, 1, 2]])
    ref = LinkBert(cfg).apply({"params": params}, ids, mask, types, pos, deterministic=True)
    return cfg, params, (ids, mask, types, pos), ref


def _assert_same_outputs(a, b, atol):
    for k in ("last_hidden_state", "pooled_output", "mlm_logits", "drp_logits"):
        x, y = np.asarray(a[k]), np.asarray(b[k])
        finite = np.isfinite(y)
        np.testing.assert_array_equal(np.isfinite(x), finite)
        assert max_diff(x[finite], y[finite]) <= atol, k


@pytest.mark.parametrize("remat", ["none", "full"])
def test_scanned_equals_unscanned(odd, remat):
    cfg, params, batch, ref = odd
    scfg = cfg.replace(scan_layers=True, remat=remat)
    stacked = convert.stack_layers(params)
    assert set(stacked["encoder"]) == {"layers"}
    out = LinkBert(scfg).apply({"params": stacked}, *batch, deterministic=True)
    _assert_same_outputs(out, ref, 1e-6)
    # Same tree structure as a scanned init.
    init_tree = jax.tree_util.tree_structure(jax.eval_shape(
        lambda: init_params(scfg, jax.random.key(0))))
    assert jax.tree_util.tree_structure(stacked) == init_tree
    np.testing.assert_equal(convert.unstack_layers(stacked), params)


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_equals_no_remat(odd, remat):
    cfg, params, batch, ref = odd
    out = LinkBert(cfg.replace(remat=remat)).apply({"params": params}, *batch,
                                                   deterministic=True)
    _assert_same_outputs(out, ref, 1e-6)

    def loss(p, c):
        o = LinkBert(c).apply({"params": p}, *batch, deterministic=True)
        return jnp.sum(o.last_hidden_state ** 2) + jnp.sum(o.drp_logits)

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    g_ref = grad(params, cfg)
    g = grad(params, cfg.replace(remat=remat))
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scan,remat", [(False, "none"), (False, "full"), (True, "none")])
def test_readout_at_cls_is_the_cls_of_the_whole(odd, scan, remat):
    """What the pooled task heads run: the last layer at [CLS] alone (the same values)."""
    cfg, params, (ids, mask, types, _), ref = odd
    cfg = cfg.replace(scan_layers=scan, remat=remat)
    p = convert.stack_layers(params) if scan else params
    first = LinkBert(cfg).apply({"params": p}, ids, mask, types, deterministic=True,
                                readout=Readout.first(jnp.asarray(mask)),
                                method=LinkBert.read)
    assert first.shape == (ids.shape[0], 1, cfg.hidden_size)
    assert max_diff(first, np.asarray(ref.last_hidden_state)[:, :1]) <= 1e-6


@pytest.mark.parametrize("scan,group", [(False, 8), (False, 2), (True, 4)])
def test_packed_rows_give_each_example_its_own_cls(odd, scan, group):
    """Examples packed several to a row (positions restarting, attention within each
    example) read at their [CLS]: the hidden state of one example to a row."""
    cfg, params, _, _ = odd
    cfg = cfg.replace(scan_layers=scan)
    p = convert.stack_layers(params) if scan else params
    rng = np.random.default_rng(5)
    B, L = 8, 16
    ids = rng.integers(1, cfg.vocab_size, (B, L))
    mask = (np.arange(L) < rng.integers(1, 9, B)[:, None]).astype(np.int32)
    types = (np.arange(L) >= 2) * mask
    ids = ids * mask
    model = LinkBert(cfg)
    whole = model.apply({"params": p}, ids, mask, types, deterministic=True,
                        method=LinkBert.encode)
    batch = packing.pack({"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
                         group)
    G, R, _ = batch["input_ids"].shape
    assert R * G < B  # several examples to a row
    flat = {k: batch[k].reshape(G * R, L) for k in ("input_ids", "token_type_ids",
                                                    "position_ids", "segment_ids")}
    read = model.apply({"params": p}, flat["input_ids"], None, flat["token_type_ids"],
                       position_ids=flat["position_ids"], segment_ids=flat["segment_ids"],
                       readout=Readout.packed(jnp.asarray(batch["cls_index"]),
                                              jnp.asarray(batch["segment_ids"])),
                       deterministic=True, method=LinkBert.read)
    assert max_diff(read[:, 0], np.asarray(whole)[:, 0]) <= 1e-5


def test_the_core_encoder_reads_as_plain_bert():
    """Pretraining's path takes no readout: ``encode``, the encoder and the layer have
    BERT's arguments; the pooled heads' readout is the second entry point ``read``."""
    import inspect
    from linkbert_jax import model
    for fn in (LinkBert.encode, model.Encoder.__call__, model.Layer.__call__,
               LinkBert.__call__):
        names = set(inspect.signature(fn).parameters)
        assert not names & {"readout", "at_BxQ"}, (fn.__qualname__, names)
    assert "readout" in inspect.signature(LinkBert.read).parameters


def test_jit_equals_no_jit(odd):
    cfg, params, batch, ref = odd
    fn = jax.jit(lambda p, *b: LinkBert(cfg).apply({"params": p}, *b, deterministic=True))
    _assert_same_outputs(fn(params, *batch), ref, 1e-6)


def test_fused_attention_equals_xla(odd):
    cfg, params, batch, ref = odd
    out = LinkBert(cfg.replace(attention="fused")).apply({"params": params}, *batch,
                                                         deterministic=True)
    _assert_same_outputs(out, ref, 1e-5)


def test_dropout_follows_deterministic_flag(odd):
    cfg, params, batch, ref = odd
    model = LinkBert(cfg)
    again = model.apply({"params": params}, *batch, deterministic=True,
                        rngs={"dropout": jax.random.key(3)})
    _assert_same_outputs(again, ref, 0.0)  # rng ignored when deterministic
    d1 = model.apply({"params": params}, *batch, deterministic=False,
                     rngs={"dropout": jax.random.key(1)})
    d1b = model.apply({"params": params}, *batch, deterministic=False,
                      rngs={"dropout": jax.random.key(1)})
    d2 = model.apply({"params": params}, *batch, deterministic=False,
                     rngs={"dropout": jax.random.key(2)})
    _assert_same_outputs(d1, d1b, 0.0)  # same rng, same dropout
    assert max_diff(d1.last_hidden_state, ref.last_hidden_state) > 1e-3
    assert max_diff(d1.last_hidden_state, d2.last_hidden_state) > 1e-3
    with pytest.raises(Exception):  # dropout without an rng is an error, not a no-op
        model.apply({"params": params}, *batch, deterministic=False)
    # With zero dropout rates, training mode computes the same function.
    cfg0 = cfg.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    d0 = LinkBert(cfg0).apply({"params": params}, *batch, deterministic=False,
                              rngs={"dropout": jax.random.key(1)})
    _assert_same_outputs(d0, ref, 1e-6)


def test_bf16_compute_close_to_fp32(odd):
    cfg, params, batch, ref = odd
    out = LinkBert(cfg.replace(dtype="bfloat16")).apply({"params": params}, *batch,
                                                        deterministic=True)
    assert out.last_hidden_state.dtype == jnp.bfloat16
    assert out.mlm_logits.dtype == jnp.float32 and out.drp_logits.dtype == jnp.float32
    for k in ("last_hidden_state", "pooled_output", "drp_logits"):
        x, y = np.asarray(out[k], np.float32), np.asarray(ref[k])
        assert np.all(np.isfinite(x)), k
        scale = np.max(np.abs(y)) + 1e-6
        assert max_diff(x, y) / scale < 0.05, (k, max_diff(x, y), scale)
    mlm = np.asarray(out.mlm_logits)[..., :cfg.vocab_size]
    assert np.all(np.isfinite(mlm))
    # bf16 logits rank the same top token nearly always.
    top_ref = np.argmax(np.asarray(ref.mlm_logits), -1)
    assert np.mean(np.argmax(mlm, -1) == top_ref) >= 0.75


def test_mlm_drp_only_when_asked():
    cfg = ModelConfig(**CONFIGS["odd"])
    params = random_params(cfg)
    ids, mask, types = make_batch(cfg)
    out = LinkBert(cfg).apply({"params": params}, ids, mask, types, deterministic=True)
    assert out.mlm_logits is None
    assert out.last_hidden_state.shape == ids.shape + (cfg.hidden_size,)
    assert out.pooled_output.shape == (ids.shape[0], cfg.hidden_size)
    assert out["pooled_output"] is out.pooled_output


def _hf_count(cfg: ModelConfig) -> int:
    with torch.device("meta"):
        model = transformers.BertModel(hf_torch.config_to_hf(cfg))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["tiny", "base", "large", "bio_base", "bio_large"])
def test_param_counts_equal_hf_bert_model(name):
    cfg = ModelConfig(**architectures.ARCHITECTURES[name])
    shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    ours = count_params(shapes, encoder_only=True, config=cfg)
    assert ours == _hf_count(cfg)
    if name == "base":
        assert ours == 108_310_272
    # Scanned layout has the same count.
    scfg = cfg.replace(scan_layers=True)
    sshapes = jax.eval_shape(lambda: init_params(scfg, jax.random.key(0)))
    assert count_params(sshapes, encoder_only=True, config=scfg) == ours
