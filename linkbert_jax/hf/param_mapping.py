"""The name map between linkbert-jax parameters and Hugging Face BERT tensors.

One table (:func:`name_map`): each :class:`Entry` pairs a Hugging Face tensor name with a
Flax parameter path and a layout, a named pair of exact transforms (:data:`LAYOUTS`,
``to_flax`` and ``to_hf``). Nothing else in the package knows a tensor name, so a new
weight is one more line here (in the spirit of maxtext's ``param_mapping.py``).

Layer layouts: the table is written for unscanned params (``encoder/layer_<i>``);
:func:`stack_layers` / :func:`unstack_layers` move to and from the ``scan_layers=True``
layout (``encoder/layers`` with a leading layer axis).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import numpy as np

from linkbert_jax import objectives
from linkbert_jax.model import ModelConfig

GROUPS = ("encoder", "pooler", "mlm", "drp")  # only "encoder" weights are mandatory
HEAD_GROUPS = ("mlm", "drp")  # not part of BertModel
NSP_HEAD = "cls.seq_relationship"  # BERT's own 2-way NSP head in BertForPreTraining
DRP_HEAD = "drp"  # LinkBERT's 3-way head: no transformers class has one of this size


def relation_head(cfg: ModelConfig) -> str:
    """The HF name of the relation head (Flax ``drp``): a 2-way head is BERT's NSP head,
    exported where ``BertForPreTraining`` loads it; any other size is ``drp``."""
    return NSP_HEAD if cfg.num_relations == objectives.num_relations("nsp") else DRP_HEAD


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one tensor moves: ``to_flax(hf_array, cfg)`` and its exact inverse ``to_hf``."""
    to_flax: Callable[[np.ndarray, ModelConfig], np.ndarray]
    to_hf: Callable[[np.ndarray, ModelConfig], np.ndarray]


def _pad_vocab(w: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    pad = cfg.padded_vocab_size - cfg.vocab_size
    return np.pad(w, [(0, pad)] + [(0, 0)] * (w.ndim - 1)) if pad else w


def _heads(cfg: ModelConfig) -> tuple:
    return cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim


LAYOUTS = {
    "copy": Layout(lambda w, c: w, lambda x, c: x),
    # torch Linear [out, in] <-> Dense kernel [in, out]
    "linear": Layout(lambda w, c: w.T, lambda x, c: x.T),
    # query/key/value [heads*head_dim, D] <-> DenseGeneral kernel [D, heads, head_dim]
    "qkv_kernel": Layout(lambda w, c: w.T.reshape(_heads(c)),
                         lambda x, c: x.reshape(c.hidden_size, -1).T),
    "qkv_bias": Layout(lambda w, c: w.reshape(_heads(c)[1:]), lambda x, c: x.reshape(-1)),
    # attention output [D, heads*head_dim] <-> [heads, head_dim, D]
    "out_kernel": Layout(lambda w, c: w.T.reshape(_heads(c)[1:] + (c.hidden_size,)),
                         lambda x, c: x.reshape(-1, c.hidden_size).T),
    # vocabulary rows: padded with zeros in Flax (sharding), stripped on export
    "vocab": Layout(_pad_vocab, lambda x, c: x[:c.vocab_size]),
}


@dataclasses.dataclass(frozen=True)
class Entry:
    hf: str  # HF name without the ``bert.`` prefix for BertModel weights
    path: tuple  # path in the (unscanned) Flax parameter tree
    layout: str  # key of LAYOUTS
    hf_shape: tuple
    group: str  # one of GROUPS

    @property
    def hf_saved(self) -> str:
        """The name in a saved ``BertForPreTraining`` state dict."""
        return "bert." + self.hf if self.group in ("encoder", "pooler") else self.hf

    def to_flax(self, w: np.ndarray, cfg: ModelConfig) -> np.ndarray:
        return np.ascontiguousarray(LAYOUTS[self.layout].to_flax(w, cfg))

    def to_hf(self, x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
        return np.ascontiguousarray(LAYOUTS[self.layout].to_hf(x, cfg))


def name_map(cfg: ModelConfig) -> list[Entry]:
    """The complete HF <-> Flax name map for ``cfg`` (unscanned layout)."""
    D, F, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    NH = cfg.num_attention_heads * cfg.head_dim
    out: list[Entry] = []

    def add(hf, path, layout, shape, group="encoder"):
        out.append(Entry(hf, tuple(path), layout, tuple(shape), group))

    def layer_norm(hf, path, group="encoder"):
        add(hf + ".weight", path + ("scale",), "copy", (D,), group)
        add(hf + ".bias", path + ("bias",), "copy", (D,), group)

    def linear(hf, path, n_in, n_out, group="encoder"):
        add(hf + ".weight", path + ("kernel",), "linear", (n_out, n_in), group)
        add(hf + ".bias", path + ("bias",), "copy", (n_out,), group)

    e = ("embeddings",)
    add("embeddings.word_embeddings.weight", e + ("word_embeddings", "embedding"), "vocab",
        (V, D))
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
    add("cls.predictions.bias", ("mlm", "bias"), "vocab", (V,), "mlm")
    if cfg.num_relations:  # objective mlm: no relation head
        linear(relation_head(cfg), ("drp",), D, cfg.num_relations, "drp")
    return out


def stack_layers(params, num_layers: Optional[int] = None):
    """``encoder/layer_<i>/...`` -> ``encoder/layers/...`` with a leading layer axis
    (the ``scan_layers=True`` layout). A no-op on stacked params."""
    enc = params["encoder"]
    if "layers" in enc:
        return params
    n = num_layers if num_layers is not None else len(enc)
    layers = [enc[f"layer_{i}"] for i in range(n)]
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *layers)
    return {**params, "encoder": {"layers": stacked}}


def unstack_layers(params):
    """Inverse of :func:`stack_layers`. A no-op on unstacked params."""
    enc = params["encoder"]
    if "layers" not in enc:
        return params
    n = jax.tree.leaves(enc["layers"])[0].shape[0]
    return {**params, "encoder": {
        f"layer_{i}": jax.tree.map(lambda x, i=i: np.asarray(x)[i], enc["layers"])
        for i in range(n)}}


def count_params(params, *, encoder_only: bool = False,
                 config: Optional[ModelConfig] = None) -> int:
    """Number of parameters; with ``encoder_only`` the ``BertModel`` count (embeddings,
    encoder, pooler) without vocabulary padding (``config`` needed to strip it)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    total = 0
    for path, x in leaves:
        top = getattr(path[0], "key", None)
        if encoder_only and top in ("mlm", "drp"):
            continue
        n = x.size
        if encoder_only and config is not None and "word_embeddings" in jax.tree_util.keystr(path):
            n = config.vocab_size * config.hidden_size
        total += n
    return total
