"""Lossless conversion between linkbert-jax parameters and Hugging Face BERT directories.

One explicit name map (:func:`name_map`): each entry pairs a Hugging Face tensor name with
a Flax parameter path and a layout ``kind`` (how it is transposed/reshaped). Every key and
shape is checked; the layouts are exact, so JAX -> HF -> JAX is bitwise identical
(vocabulary padding rows are not exported and come back as zeros).

Exported layout (``model.safetensors``, float32 by default; ``BertForPreTraining`` names)::

    bert.embeddings.*, bert.encoder.layer.<i>.*, bert.pooler.dense.*    BertModel
    cls.predictions.transform.{dense,LayerNorm}.*                       MLM transform
    cls.predictions.bias, cls.predictions.decoder.bias                  MLM output bias
                         (decoder.weight is tied to the word embeddings, as HF saves it)
    drp.weight [3, D], drp.bias [3]                                     LinkBERT DRP head

The DRP head is 3-way (0 contiguous, 1 random, 2 linked) on ``pooler_output``; it is not
HF's 2-way NSP ``cls.seq_relationship``, so it has its own prefix that every
``transformers`` class ignores (reported as "unexpected", like ``cls.*`` for ``AutoModel``);
``docs/convert.md`` has the PyTorch snippet that reads it. Checks against PyTorch: hf_torch.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from typing import Optional

import numpy as np

from linkbert_jax.data.features import RELATIONS
from linkbert_jax.model import ModelConfig

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PT_WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "added_tokens.json")

# ModelConfig fields that are the exported architecture (HF BertConfig names).
HF_CONFIG_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "hidden_act", "hidden_dropout_prob",
                    "attention_probs_dropout_prob", "max_position_embeddings",
                    "type_vocab_size", "layer_norm_eps", "initializer_range", "pad_token_id")
# Overriding these on import would contradict the weights.
ARCHITECTURE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                       "intermediate_size", "max_position_embeddings", "type_vocab_size",
                       "num_relations")

GROUPS = ("encoder", "pooler", "mlm", "drp")  # only "encoder" weights are mandatory


class ConversionError(ValueError):
    """Bad input for a conversion; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class Entry:
    hf: str  # HF name without the ``bert.`` prefix for BertModel weights
    path: tuple  # path in the (unscanned) Flax parameter tree
    kind: str  # layout transform, see _to_flax / _to_hf
    hf_shape: tuple
    group: str  # encoder | pooler | mlm | drp

    @property
    def hf_saved(self) -> str:
        return "bert." + self.hf if self.group in ("encoder", "pooler") else self.hf


def name_map(cfg: ModelConfig) -> list[Entry]:
    """The complete HF <-> Flax name map for ``cfg`` (unscanned layout)."""
    D, F, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    NH = cfg.num_attention_heads * cfg.head_dim
    out: list[Entry] = []

    def add(hf, path, kind, shape, group="encoder"):
        out.append(Entry(hf, tuple(path), kind, tuple(shape), group))

    def layer_norm(hf, path, group="encoder"):
        add(hf + ".weight", path + ("scale",), "copy", (D,), group)
        add(hf + ".bias", path + ("bias",), "copy", (D,), group)

    def linear(hf, path, n_in, n_out, group="encoder"):
        add(hf + ".weight", path + ("kernel",), "linear", (n_out, n_in), group)
        add(hf + ".bias", path + ("bias",), "copy", (n_out,), group)

    e = ("embeddings",)
    add("embeddings.word_embeddings.weight", e + ("word_embeddings", "embedding"),
        "vocab_rows", (V, D))
    add("embeddings.position_embeddings.weight", e + ("position_embeddings", "embedding"),
        "copy", (cfg.max_position_embeddings, D))
    add("embeddings.token_type_embeddings.weight", e + ("token_type_embeddings", "embedding"),
        "copy", (cfg.type_vocab_size, D))
    layer_norm("embeddings.LayerNorm", e + ("LayerNorm",))
    for i in range(cfg.num_hidden_layers):
        hf, p = f"encoder.layer.{i}.", ("encoder", f"layer_{i}")
        for n in ("query", "key", "value"):
            add(hf + f"attention.self.{n}.weight", p + ("attention", n, "kernel"),
                "qkv_kernel", (NH, D))
            add(hf + f"attention.self.{n}.bias", p + ("attention", n, "bias"), "qkv_bias", (NH,))
        add(hf + "attention.output.dense.weight", p + ("attention", "output", "kernel"),
            "out_kernel", (D, NH))
        add(hf + "attention.output.dense.bias", p + ("attention", "output", "bias"), "copy", (D,))
        layer_norm(hf + "attention.output.LayerNorm", p + ("attention_LayerNorm",))
        linear(hf + "intermediate.dense", p + ("intermediate",), D, F)
        linear(hf + "output.dense", p + ("output",), F, D)
        layer_norm(hf + "output.LayerNorm", p + ("output_LayerNorm",))
    linear("pooler.dense", ("pooler",), D, D, "pooler")
    linear("cls.predictions.transform.dense", ("mlm", "transform"), D, D, "mlm")
    layer_norm("cls.predictions.transform.LayerNorm", ("mlm", "transform_LayerNorm"), "mlm")
    add("cls.predictions.bias", ("mlm", "bias"), "vocab_vec", (V,), "mlm")
    linear("drp", ("drp",), D, cfg.num_relations, "drp")
    return out


def _to_flax(kind: str, w: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    D, N, H = cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim
    pad = cfg.padded_vocab_size - cfg.vocab_size
    if kind == "copy":
        return w
    if kind == "linear":
        return w.T
    if kind == "qkv_kernel":
        return w.T.reshape(D, N, H)
    if kind == "qkv_bias":
        return w.reshape(N, H)
    if kind == "out_kernel":
        return w.T.reshape(N, H, D)
    if kind == "vocab_rows":
        return np.concatenate([w, np.zeros((pad,) + w.shape[1:], w.dtype)]) if pad else w
    if kind == "vocab_vec":
        return np.concatenate([w, np.zeros((pad,), w.dtype)]) if pad else w
    raise AssertionError(kind)


def _to_hf(kind: str, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    D, NH = cfg.hidden_size, cfg.num_attention_heads * cfg.head_dim
    if kind == "copy":
        return x
    if kind == "linear":
        return x.T
    if kind == "qkv_kernel":
        return x.reshape(D, NH).T
    if kind == "qkv_bias":
        return x.reshape(NH)
    if kind == "out_kernel":
        return x.reshape(NH, D).T
    if kind in ("vocab_rows", "vocab_vec"):
        return x[:cfg.vocab_size]
    raise AssertionError(kind)


# ----------------------------------------------------------------------------- layers


def _is_stacked(params) -> bool:
    return "layers" in params.get("encoder", {})


def stack_layers(params, num_layers: Optional[int] = None):
    """``encoder/layer_<i>/...`` -> ``encoder/layers/...`` with a leading layer axis
    (the ``scan_layers=True`` layout). A no-op on stacked params."""
    enc = params["encoder"]
    if "layers" in enc:
        return params
    n = num_layers if num_layers is not None else len(enc)
    layers = [enc[f"layer_{i}"] for i in range(n)]
    stacked = _tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *layers)
    return {**params, "encoder": {"layers": stacked}}


def unstack_layers(params):
    """Inverse of :func:`stack_layers`. A no-op on unstacked params."""
    enc = params["encoder"]
    if "layers" not in enc:
        return params
    first = _leaves(enc["layers"])[0]
    n = first.shape[0]
    return {**params, "encoder": {
        f"layer_{i}": _tree_map(lambda x, i=i: np.asarray(x)[i], enc["layers"])
        for i in range(n)}}


def _tree_map(fn, *trees):
    if isinstance(trees[0], dict):
        return {k: _tree_map(fn, *(t[k] for t in trees)) for k in trees[0]}
    return fn(*trees)


def _leaves(tree):
    if isinstance(tree, dict):
        return [x for k in tree for x in _leaves(tree[k])]
    return [tree]


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _set(tree, path, value):
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


# ----------------------------------------------------------------------------- JAX -> HF


def to_hf_state_dict(config: ModelConfig, params, *, heads: bool = True) -> dict:
    """Flax params (scanned or not, numpy or jax arrays) -> HF state dict of numpy arrays
    (``BertForPreTraining`` names, plus ``cls.predictions.decoder.bias`` and ``drp.*``)."""
    params = unstack_layers(_to_numpy(params))
    out = {}
    for e in name_map(config):
        if not heads and e.group in ("mlm", "drp"):
            continue
        try:
            x = _get(params, e.path)
        except KeyError:
            raise ConversionError(f"params have no {'/'.join(e.path)} (for {e.hf_saved})")
        w = np.ascontiguousarray(_to_hf(e.kind, np.asarray(x, np.float32), config))
        if w.shape != e.hf_shape:
            raise ConversionError(f"params {'/'.join(e.path)}: shape {x.shape} does not "
                                  f"give {e.hf_saved} {e.hf_shape}")
        out[e.hf_saved] = w
    if heads:
        # Tied in transformers to cls.predictions.bias; written too for loaders that don't.
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"].copy()
    return out


def hf_config_dict(config: ModelConfig, dtype: str = "float32") -> dict:
    d = {k: getattr(config, k) for k in HF_CONFIG_FIELDS}
    d.update(model_type="bert", architectures=["BertForPreTraining"],
             position_embedding_type="absolute", tie_word_embeddings=True, is_decoder=False,
             add_cross_attention=False, use_cache=True, classifier_dropout=None, dtype=dtype,
             num_relations=config.num_relations,
             relation_labels=list(RELATIONS[:config.num_relations])
             if config.num_relations == len(RELATIONS) else None)
    return dict(sorted(d.items()))


def save_hf(config: ModelConfig, params, out_dir: str, tokenizer=None, *,
            dtype: str = "float32", heads: bool = True) -> str:
    """Write a Hugging Face BERT directory: ``config.json``, ``model.safetensors``,
    tokenizer files when ``tokenizer`` is given (a directory to copy them from, an HF
    tokenizer with ``save_pretrained`` or a ``tokenizers.Tokenizer``).

    ``dtype``: float32 (default, lossless), bfloat16 or float16. ``heads=False`` writes the
    ``BertModel`` weights only (what the released LinkBERT checkpoints hold).
    """
    from safetensors.numpy import save_file

    if dtype not in ("float32", "bfloat16", "float16"):
        raise ConversionError(f"dtype must be float32|bfloat16|float16, got {dtype!r}")
    sd = to_hf_state_dict(config, params, heads=heads)
    if dtype != "float32":
        import ml_dtypes  # noqa: F401  (jax dependency; registers bfloat16 with numpy)
        np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
        sd = {k: v.astype(np_dtype) for k, v in sd.items()}
    os.makedirs(out_dir, exist_ok=True)
    save_file(sd, os.path.join(out_dir, WEIGHTS_NAME), metadata={"format": "pt"})
    with open(os.path.join(out_dir, CONFIG_NAME), "w") as f:
        json.dump(hf_config_dict(config, dtype), f, indent=2)
        f.write("\n")
    if tokenizer is not None:
        _save_tokenizer(tokenizer, out_dir)
    return out_dir


def _save_tokenizer(tokenizer, out_dir: str) -> None:
    if isinstance(tokenizer, (str, os.PathLike)):
        src = os.fspath(tokenizer)
        if not os.path.isdir(src):
            raise ConversionError(f"{src}: tokenizer directory does not exist")
        found = [n for n in TOKENIZER_FILES if os.path.exists(os.path.join(src, n))]
        if not found:
            raise ConversionError(f"{src}: no tokenizer files (one of {TOKENIZER_FILES})")
        for n in found:
            shutil.copyfile(os.path.join(src, n), os.path.join(out_dir, n))
    elif hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(out_dir)
    elif hasattr(tokenizer, "save"):  # tokenizers.Tokenizer
        tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    else:
        raise ConversionError(f"cannot save tokenizer of type {type(tokenizer).__name__}")


def _to_numpy(params):
    import jax
    return jax.tree_util.tree_map(np.asarray, jax.device_get(params))


# ----------------------------------------------------------------------------- HF -> JAX


def read_hf_config(path: str) -> dict:
    cfg_path = os.path.join(path, CONFIG_NAME)
    if not os.path.isdir(path):
        raise ConversionError(f"{path}: not a directory")
    if not os.path.exists(cfg_path):
        raise ConversionError(f"{path}: no {CONFIG_NAME}; not a Hugging Face model directory")
    try:
        with open(cfg_path) as f:
            d = json.load(f)
    except json.JSONDecodeError as err:
        raise ConversionError(f"{cfg_path}: invalid JSON ({err})") from None
    model_type = d.get("model_type")
    if model_type != "bert":
        raise ConversionError(f"{cfg_path}: model_type {model_type!r} is not 'bert'; only "
                              "BERT checkpoints convert")
    pet = d.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise ConversionError(f"{cfg_path}: position_embedding_type {pet!r} unsupported "
                              "(only 'absolute')")
    if d.get("is_decoder") or d.get("add_cross_attention"):
        raise ConversionError(f"{cfg_path}: decoder / cross-attention BERT unsupported")
    return d


def _read_weights(path: str) -> tuple[dict, str]:
    """All tensors of an HF directory as numpy, and the file name(s) they came from."""
    st, idx, pt = (os.path.join(path, n) for n in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME,
                                                   PT_WEIGHTS_NAME))
    if os.path.exists(st):
        return _read_safetensors(st), st
    if os.path.exists(idx):
        with open(idx) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for s in shards:
            out.update(_read_safetensors(os.path.join(path, s)))
        return out, idx
    if os.path.exists(pt):
        try:
            import torch
        except ImportError:
            raise ConversionError(f"{pt}: reading pytorch_model.bin needs torch; "
                                  "convert it to model.safetensors or install torch") from None
        try:
            sd = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001  (corrupt / non-weights pickle)
            raise ConversionError(f"{pt}: cannot load ({type(err).__name__}: {err})") from None
        return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
                for k, v in sd.items()}, pt
    raise ConversionError(f"{path}: no {WEIGHTS_NAME}, {WEIGHTS_INDEX_NAME} or {PT_WEIGHTS_NAME}")


def _read_safetensors(file: str) -> dict:
    from safetensors import safe_open
    try:
        out = {}
        with safe_open(file, framework="numpy") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
        return out
    except Exception as err:  # noqa: BLE001  (safetensors raises its own error types)
        raise ConversionError(f"{file}: cannot read safetensors ({err})") from None


_LEGACY = ((re.compile(r"LayerNorm\.gamma$"), "LayerNorm.weight"),
           (re.compile(r"LayerNorm\.beta$"), "LayerNorm.bias"))
_IGNORED = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")


def _normalise_keys(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        if _IGNORED.search(k):
            continue
        if k.startswith("bert."):
            k = k[len("bert."):]
        for pat, rep in _LEGACY:
            k = pat.sub(rep, k)
        out[k] = v
    return out


def load_hf(path: str, *, scan_layers: Optional[bool] = None, seed: int = 0,
            return_info: bool = False, **overrides):
    """Read a Hugging Face BERT directory into ``(ModelConfig, params)``.

    Accepts ``BertModel``, ``BertForMaskedLM`` and ``BertForPreTraining`` layouts (with or
    without the ``bert.`` prefix; legacy ``embeddings.position_ids`` and ``gamma/beta``
    names handled) from ``model.safetensors`` (or its sharded index) or
    ``pytorch_model.bin`` (``torch.load(weights_only=True)``). Missing pooler / MLM / DRP
    heads are initialised (seeded) and reported with a warning; a missing encoder weight,
    a wrong shape, a non-BERT config or an untied MLM decoder is a :class:`ConversionError`.

    ``scan_layers``/``overrides``: ModelConfig fields for numerics and memory (``dtype``,
    ``remat``, ``attention``, ``vocab_pad_multiple``, dropout...); with
    ``scan_layers=True`` the layers come stacked. Params are float32 numpy arrays. With
    ``return_info`` also returns ``{"initialized": [...], "ignored": [...], "file": ...}``.
    """
    path = os.fspath(path)
    hf = read_hf_config(path)
    cfg_file = os.path.join(path, CONFIG_NAME)
    sd, wfile = _read_weights(path)
    sd = _normalise_keys(sd)

    fields = {k: hf[k] for k in HF_CONFIG_FIELDS if k in hf and hf[k] is not None}
    if "drp.weight" in sd:
        fields["num_relations"] = int(sd["drp.weight"].shape[0])
    elif isinstance(hf.get("num_relations"), int):
        fields["num_relations"] = hf["num_relations"]
    bad = [k for k in overrides if k in ARCHITECTURE_FIELDS and overrides[k] != fields.get(k)]
    if bad:
        raise ConversionError(f"cannot override architecture field(s) {bad}: fixed by {cfg_file}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelConfig)}
    if unknown:
        raise ConversionError(f"unknown ModelConfig field(s) {sorted(unknown)}")
    fields.update(overrides)
    if scan_layers is not None:
        fields["scan_layers"] = scan_layers
    try:
        config = ModelConfig(**fields)
    except (TypeError, ValueError) as err:
        raise ConversionError(f"{cfg_file}: {err}") from None

    # A 3-way head stored as cls.seq_relationship is a DRP head; a 2-way one is BERT's NSP.
    nsp = sd.get("cls.seq_relationship.weight")
    if "drp.weight" not in sd and nsp is not None and nsp.shape[0] == config.num_relations:
        sd["drp.weight"] = sd.pop("cls.seq_relationship.weight")
        sd["drp.bias"] = sd.pop("cls.seq_relationship.bias")
    if "cls.predictions.bias" not in sd and "cls.predictions.decoder.bias" in sd:
        sd["cls.predictions.bias"] = sd["cls.predictions.decoder.bias"]
    dec = sd.pop("cls.predictions.decoder.weight", None)
    sd.pop("cls.predictions.decoder.bias", None)
    if dec is not None and "embeddings.word_embeddings.weight" in sd:
        if hf.get("tie_word_embeddings", True) is False and not np.array_equal(
                dec, sd["embeddings.word_embeddings.weight"]):
            raise ConversionError(f"{wfile}: cls.predictions.decoder.weight is not tied to "
                                  "the word embeddings; untied MLM decoders are unsupported")

    entries = name_map(config)
    known = {e.hf for e in entries}
    params: dict = {}
    missing_heads: dict[str, list[str]] = {}
    for e in entries:
        w = sd.get(e.hf)
        if w is None:
            if e.group == "encoder":
                raise ConversionError(f"{wfile}: missing encoder weight {e.hf_saved}")
            missing_heads.setdefault(e.group, []).append(e.hf_saved)
            continue
        if tuple(w.shape) != e.hf_shape:
            raise ConversionError(f"{wfile}: {e.hf_saved} has shape {tuple(w.shape)}, "
                                  f"expected {e.hf_shape} from {cfg_file}")
        if not np.issubdtype(w.dtype, np.floating) and w.dtype.name != "bfloat16":
            raise ConversionError(f"{wfile}: {e.hf_saved} has non-float dtype {w.dtype}")
        _set(params, e.path, np.ascontiguousarray(_to_flax(e.kind, w.astype(np.float32), config)))
    ignored = sorted(k for k in sd if k not in known)
    stray = [k for k in ignored if k.startswith(("encoder.", "embeddings."))]
    if stray:
        raise ConversionError(f"{wfile}: weight(s) {stray[:3]} do not fit {cfg_file} "
                              f"({config.num_hidden_layers} layers)")

    initialized = []
    if missing_heads:
        fresh = _init_heads(config, seed)
        for e in entries:
            if e.group in missing_heads:
                _set(params, e.path, fresh[e.path])
                initialized.append(e.hf_saved)
        log.warning("%s: no %s weights; initialised them (seed %d)", wfile,
                    "/".join(missing_heads), seed)
    if ignored:
        log.info("%s: ignored weights %s", wfile, ignored)
    if config.scan_layers:
        params = stack_layers(params, config.num_hidden_layers)
    if return_info:
        return config, params, {"initialized": initialized, "ignored": ignored, "file": wfile}
    return config, params


def _init_heads(cfg: ModelConfig, seed: int) -> dict:
    """Fresh pooler/MLM/DRP parameters as ``init_params`` draws them (normal(std) kernels,
    zero biases, unit LayerNorm scales), keyed by Flax path."""
    rng = np.random.default_rng(seed)
    out = {}
    for e in name_map(cfg):
        if e.group == "encoder":
            continue
        shape = _to_flax(e.kind, np.zeros(e.hf_shape, np.float32), cfg).shape
        leaf = e.path[-1]
        if leaf == "kernel":
            x = rng.normal(0.0, cfg.initializer_range, shape).astype(np.float32)
        elif leaf == "scale":
            x = np.ones(shape, np.float32)
        else:
            x = np.zeros(shape, np.float32)
        out[e.path] = x
    return out
