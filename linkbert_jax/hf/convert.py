"""Lossless conversion between linkbert-jax parameters and Hugging Face BERT directories.

The tensor names and layouts are one table (:mod:`linkbert_jax.hf.param_mapping`), the files
are read and written by :mod:`linkbert_jax.hf.hf_files`; this module puts them together.
Every key and shape is checked and the layouts are exact, so JAX -> HF -> JAX is bitwise
identical (vocabulary padding rows are not exported and come back as zeros).

Exported layout (``model.safetensors``, float32 by default; ``BertForPreTraining`` names)::

    bert.embeddings.*, bert.encoder.layer.<i>.*, bert.pooler.dense.*    BertModel
    cls.predictions.transform.{dense,LayerNorm}.*                       MLM transform
    cls.predictions.bias, cls.predictions.decoder.bias                  MLM output bias
                         (decoder.weight is tied to the word embeddings, as HF saves it)
    drp.weight [3, D], drp.bias [3]                     LinkBERT DRP head (objective drp)
    cls.seq_relationship.{weight [2, D], bias [2]}      BERT's NSP head (objective nsp)
                                                        (no relation head: objective mlm)

The DRP head is 3-way (0 contiguous, 1 random, 2 linked) on ``pooler_output``; it is not
HF's 2-way NSP ``cls.seq_relationship``, so it has its own prefix that every
``transformers`` class ignores (reported as "unexpected", like ``cls.*`` for ``AutoModel``);
``docs/convert.md`` has the PyTorch snippet that reads it. A 2-way head (objective nsp) is
BERT's own NSP head, and an MLM-only model has none: ``config.json``'s ``architectures``
says ``BertForPreTraining`` or ``BertForMaskedLM``. Checks against PyTorch: hf_torch.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Optional

import numpy as np
from flax import traverse_util

from linkbert_jax.hf import hf_files
from linkbert_jax.errors import ConversionError
from linkbert_jax.model import ARCHITECTURE_FIELDS, ModelConfig, init_params
from linkbert_jax.hf.param_mapping import (DRP_HEAD, HEAD_GROUPS, NSP_HEAD, Entry, name_map,
                                        relation_head, stack_layers, unstack_layers)

__all__ = ["ConversionError", "LoadedHF", "load_hf", "save_hf", "to_hf_state_dict",
           "stack_layers", "unstack_layers"]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- JAX -> HF


def to_hf_state_dict(config: ModelConfig, params, *, heads: bool = True) -> dict:
    """Flax params (scanned or not, numpy or jax arrays) -> HF state dict of float32 numpy
    arrays (``BertForPreTraining`` names, plus ``cls.predictions.decoder.bias`` and
    ``drp.*``); ``heads=False``: the ``BertModel`` weights only."""
    import jax
    flat = traverse_util.flatten_dict(unstack_layers(jax.device_get(params)))
    out = {}
    for e in name_map(config):
        if not heads and e.group in HEAD_GROUPS:
            continue
        if e.path not in flat:
            raise ConversionError(f"params have no {'/'.join(e.path)} (for {e.hf_saved})")
        x = np.asarray(flat[e.path], np.float32)
        w = e.to_hf(x, config)
        if w.shape != e.hf_shape:
            raise ConversionError(f"params {'/'.join(e.path)}: shape {x.shape} does not "
                                  f"give {e.hf_saved} {e.hf_shape}")
        out[e.hf_saved] = w
    if heads:
        # Tied in transformers to cls.predictions.bias; written too for loaders that don't.
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"].copy()
    return out


def save_hf(config: ModelConfig, params, out_dir: str, tokenizer=None, *,
            dtype: str = "float32", heads: bool = True,
            weight_formats=("safetensors",)) -> str:
    """Write a Hugging Face BERT directory: ``config.json`` (the architecture and dropout
    of ``config``), the weights in each of ``weight_formats`` (``safetensors``, ``bin``)
    and, when ``tokenizer`` (a tokenizer directory) is given, a clean tokenizer.

    ``dtype``: float32 (default, lossless), bfloat16 or float16. ``heads=False`` writes the
    ``BertModel`` weights only (what the released LinkBERT checkpoints hold).
    """
    sd = to_hf_state_dict(config, params, heads=heads)
    os.makedirs(out_dir, exist_ok=True)
    hf_files.write_weights(out_dir, sd, dtype, weight_formats)
    hf_files.write_json(os.path.join(out_dir, hf_files.CONFIG_NAME),
                        hf_files.hf_config_dict(config, dtype))
    if tokenizer is not None:
        from linkbert_jax.data.tokenizer import save_clean
        try:
            save_clean(os.fspath(tokenizer), out_dir,
                       model_max_length=config.max_position_embeddings)
        except (OSError, ValueError) as err:
            raise ConversionError(f"tokenizer {tokenizer}: {err}") from None
    return out_dir

# ----------------------------------------------------------------------------- HF -> JAX


@dataclasses.dataclass(frozen=True)
class LoadedHF:
    """What :func:`load_hf` read: the config, float32 numpy params, and a report."""
    config: ModelConfig
    params: Any
    initialized: list  # HF names of the weights absent from the checkpoint, freshly drawn
    ignored: list  # names in the checkpoint that no parameter takes
    file: str  # the weights file (or index) read


def load_hf(path: str, *, scan_layers: Optional[bool] = None, seed: int = 0,
            **overrides) -> LoadedHF:
    """Read a Hugging Face BERT directory.

    Accepts ``BertModel``, ``BertForMaskedLM`` and ``BertForPreTraining`` layouts (see
    :mod:`linkbert_jax.hf.hf_files` for the files and names). Missing pooler / MLM / DRP heads
    are drawn by the model's own initialisers (``jax.random.key(seed)``) and reported with
    a warning; a missing encoder weight, a wrong shape, a non-BERT config or an untied MLM
    decoder is a :class:`ConversionError`.

    ``scan_layers``/``overrides``: ModelConfig fields for numerics and memory (``dtype``,
    ``remat``, ``attention``, ``vocab_pad_multiple``, dropout...), never the architecture;
    with ``scan_layers=True`` the layers come stacked. ``num_relations`` may be given (the
    objective of the run that starts here): a relation head of that size is taken, one of
    another size is left out (``ignored``) and the wanted one drawn (``initialized``).
    """
    path = os.fspath(path)
    hf = hf_files.read_hf_config(path)
    cfg_file = os.path.join(path, hf_files.CONFIG_NAME)
    sd, wfile = hf_files.read_weights(path)
    sd = hf_files.normalise_keys(sd)
    config = _model_config(hf, sd, cfg_file, scan_layers, overrides)
    sd = _canonical_heads(sd, hf, config, wfile)
    flat, missing = _flax_from_hf(sd, config, wfile, cfg_file)
    ignored = _unused(sd, config, wfile, cfg_file)
    if missing:
        flat.update(_fresh_heads(config, missing, seed))
        groups = list(dict.fromkeys(e.group for e in missing))  # name-map order
        log.warning("%s: no %s weights; initialised them (seed %d)", wfile, "/".join(groups),
                    seed)
    if ignored:
        log.info("%s: ignored weights %s", wfile, ignored)
    params = traverse_util.unflatten_dict(flat)
    if config.scan_layers:
        params = stack_layers(params, config.num_hidden_layers)
    return LoadedHF(config, params, [e.hf_saved for e in missing], ignored, wfile)


def _model_config(hf: dict, sd: dict, cfg_file: str, scan_layers, overrides) -> ModelConfig:
    """The directory's architecture (its config, the DRP head's size) plus ``overrides``."""
    fields = {k: hf[k] for k in hf_files.HF_CONFIG_FIELDS if hf.get(k) is not None}
    if DRP_HEAD + ".weight" in sd:
        fields["num_relations"] = int(sd[DRP_HEAD + ".weight"].shape[0])
    elif isinstance(hf.get("num_relations"), int):
        fields["num_relations"] = hf["num_relations"]
    default = ModelConfig()
    bad = [k for k in overrides if k in ARCHITECTURE_FIELDS and k != "num_relations"
           and overrides[k] != fields.get(k, getattr(default, k))]
    if bad:
        raise ConversionError(f"cannot override architecture field(s) {bad}: fixed by {cfg_file}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelConfig)}
    if unknown:
        raise ConversionError(f"unknown ModelConfig field(s) {sorted(unknown)}")
    fields.update(overrides)
    if scan_layers is not None:
        fields["scan_layers"] = scan_layers
    try:
        return ModelConfig(**fields)
    except (TypeError, ValueError) as err:
        raise ConversionError(f"{cfg_file}: {err}") from None


def _canonical_heads(sd: dict, hf: dict, config: ModelConfig, wfile: str) -> dict:
    """A 3-way ``cls.seq_relationship`` is a DRP head (a 2-way one is BERT's NSP, taken
    as such by a 2-way model); the MLM bias under its decoder name; the decoder weight
    checked tied and dropped."""
    sd = dict(sd)
    nsp = sd.get(NSP_HEAD + ".weight")
    if (relation_head(config) == DRP_HEAD and DRP_HEAD + ".weight" not in sd
            and nsp is not None and nsp.shape[0] == config.num_relations):
        sd[DRP_HEAD + ".weight"] = sd.pop(NSP_HEAD + ".weight")
        sd[DRP_HEAD + ".bias"] = sd.pop(NSP_HEAD + ".bias")
    if "cls.predictions.bias" not in sd and "cls.predictions.decoder.bias" in sd:
        sd["cls.predictions.bias"] = sd["cls.predictions.decoder.bias"]
    sd.pop("cls.predictions.decoder.bias", None)
    dec = sd.pop("cls.predictions.decoder.weight", None)
    emb = sd.get("embeddings.word_embeddings.weight")
    if (dec is not None and emb is not None and hf.get("tie_word_embeddings", True) is False
            and not np.array_equal(dec, emb)):
        raise ConversionError(f"{wfile}: cls.predictions.decoder.weight is not tied to "
                              "the word embeddings; untied MLM decoders are unsupported")
    return sd


def _flax_from_hf(sd: dict, config: ModelConfig, wfile: str, cfg_file: str
                  ) -> tuple[dict, list[Entry]]:
    """Flat Flax params (path -> float32 array) of every weight in ``sd``, and the head
    entries it lacks; a missing encoder weight or a wrong shape or dtype is an error."""
    flat, missing = {}, []
    for e in name_map(config):
        w = sd.get(e.hf)
        if w is None:
            if e.group == "encoder":
                raise ConversionError(f"{wfile}: missing encoder weight {e.hf_saved}")
            missing.append(e)
            continue
        if tuple(w.shape) != e.hf_shape:
            raise ConversionError(f"{wfile}: {e.hf_saved} has shape {tuple(w.shape)}, "
                                  f"expected {e.hf_shape} from {cfg_file}")
        if not np.issubdtype(w.dtype, np.floating) and w.dtype.name != "bfloat16":
            raise ConversionError(f"{wfile}: {e.hf_saved} has non-float dtype {w.dtype}")
        flat[e.path] = e.to_flax(w.astype(np.float32), config)
    return flat, missing


def _unused(sd: dict, config: ModelConfig, wfile: str, cfg_file: str) -> list[str]:
    """Names no parameter takes; an encoder weight among them (an extra layer) is an
    error, anything else (BERT's NSP head, other heads) is reported."""
    known = {e.hf for e in name_map(config)}
    ignored = sorted(k for k in sd if k not in known)
    stray = [k for k in ignored if k.startswith(("encoder.", "embeddings."))]
    if stray:
        raise ConversionError(f"{wfile}: weight(s) {stray[:3]} do not fit {cfg_file} "
                              f"({config.num_hidden_layers} layers)")
    return ignored


def _fresh_heads(config: ModelConfig, missing: list[Entry], seed: int) -> dict:
    """The ``missing`` weights as the model's own ``init`` draws them (unscanned)."""
    import jax
    paths = [e.path for e in missing]
    cfg = config.replace(scan_layers=False, remat="none", attention="xla")

    def heads(key):
        flat = traverse_util.flatten_dict(init_params(cfg, key))
        return [flat[p] for p in paths]

    values = jax.jit(heads)(jax.random.key(seed))
    return {p: np.asarray(v, np.float32) for p, v in zip(paths, values)}
