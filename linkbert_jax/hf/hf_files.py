"""Hugging Face BERT directory files: ``config.json``, weights, tokenizer.

Reading accepts what BERT checkpoints of any age hold: ``model.safetensors``, a sharded
``model.safetensors.index.json``, or ``pytorch_model.bin`` (``torch.load(weights_only=
True)``), with or without the ``bert.`` prefix, TF-era ``gamma``/``beta`` names and the
``position_ids`` buffer. Writing gives what transformers 4.16 to 5.x read: safetensors
(read from 4.23 on) and, on request, ``pytorch_model.bin`` (every version); a config with
the keys of old and new versions (``torch_dtype`` and ``dtype``, ``transformers_version``).
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from linkbert_jax.data import files
from linkbert_jax.data.features import RELATIONS
from linkbert_jax.errors import ConversionError
from linkbert_jax.model import ModelConfig

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PT_WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"
WEIGHT_FORMATS = {"safetensors": WEIGHTS_NAME, "bin": PT_WEIGHTS_NAME}
DTYPES = ("float32", "bfloat16", "float16")

# ModelConfig fields that are HF BertConfig fields of the same name and meaning.
HF_CONFIG_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "hidden_act", "hidden_dropout_prob",
                    "attention_probs_dropout_prob", "max_position_embeddings",
                    "type_vocab_size", "layer_norm_eps", "initializer_range", "pad_token_id")

# ----------------------------------------------------------------------------- config


def hf_config_dict(config: ModelConfig, dtype: str = "float32") -> dict:
    """``config.json`` of an export: the BertConfig fields, plus ``num_relations`` and
    ``relation_labels`` (ignored by transformers, read back by :func:`read_hf_config`).
    ``architectures``: ``BertForMaskedLM`` without a relation head (objective mlm), else
    ``BertForPreTraining``."""
    d = {k: getattr(config, k) for k in HF_CONFIG_FIELDS}
    arch = "BertForPreTraining" if config.num_relations else "BertForMaskedLM"
    d.update(model_type="bert", architectures=[arch],
             position_embedding_type="absolute", tie_word_embeddings=True, is_decoder=False,
             add_cross_attention=False, use_cache=True, classifier_dropout=None,
             dtype=dtype, torch_dtype=dtype,  # 5.x reads dtype, 4.x torch_dtype
             num_relations=config.num_relations,
             relation_labels=list(RELATIONS[:config.num_relations]) or None)
    version = _transformers_version()
    if version:
        d["transformers_version"] = version
    return dict(sorted(d.items()))


def _transformers_version() -> str:
    try:
        from importlib.metadata import version
        return version("transformers")
    except Exception:  # noqa: BLE001  (not installed: the key is optional)
        return ""


def read_hf_config(path: str) -> dict:
    """The ``config.json`` of a BERT directory; a :class:`ConversionError` for anything
    that is not an encoder-only BERT with absolute positions."""
    cfg_path = os.path.join(path, CONFIG_NAME)
    if not os.path.isdir(path):
        raise ConversionError(f"{path}: not a directory")
    if not os.path.exists(cfg_path):
        raise ConversionError(f"{path}: no {CONFIG_NAME}; not a Hugging Face model directory")
    d = read_json(cfg_path)
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


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path}: invalid JSON ({err})") from None


write_json = files.write_json  # atomic: a temporary name, then renamed

# ----------------------------------------------------------------------------- weights


def read_weights(path: str) -> tuple[dict, str]:
    """All tensors of an HF directory as numpy, and the file they came from."""
    st, idx, pt = (os.path.join(path, n) for n in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME,
                                                   PT_WEIGHTS_NAME))
    if os.path.exists(st):
        return _read_safetensors(st), st
    if os.path.exists(idx):
        shards = sorted(set(read_json(idx)["weight_map"].values()))
        out = {}
        for s in shards:
            out.update(_read_safetensors(os.path.join(path, s)))
        return out, idx
    if os.path.exists(pt):
        return _read_pytorch_bin(pt), pt
    raise ConversionError(f"{path}: no {WEIGHTS_NAME}, {WEIGHTS_INDEX_NAME} or {PT_WEIGHTS_NAME}")


def _read_safetensors(file: str) -> dict:
    from safetensors import safe_open
    try:
        with safe_open(file, framework="numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001  (safetensors raises its own error types)
        raise ConversionError(f"{file}: cannot read safetensors ({err})") from None


def _read_pytorch_bin(file: str) -> dict:
    torch = _torch(f"{file}: reading {PT_WEIGHTS_NAME} needs torch; convert it to "
                   f"{WEIGHTS_NAME} or install torch")
    try:
        sd = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (corrupt / non-weights pickle)
        raise ConversionError(f"{file}: cannot load ({type(err).__name__}: {err})") from None
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
            for k, v in sd.items()}


def _torch(why: str):
    try:
        import torch
    except ImportError:
        raise ConversionError(why) from None
    return torch


_LEGACY = ((re.compile(r"LayerNorm\.gamma$"), "LayerNorm.weight"),
           (re.compile(r"LayerNorm\.beta$"), "LayerNorm.bias"))
_IGNORED = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")


def normalise_keys(sd: dict) -> dict:
    """Drop buffers and the ``bert.`` prefix, rename TF-era ``gamma``/``beta``."""
    out = {}
    for k, v in sd.items():
        if _IGNORED.search(k):
            continue
        k = k.removeprefix("bert.")
        for pat, rep in _LEGACY:
            k = pat.sub(rep, k)
        out[k] = v
    return out


def write_weights(out_dir: str, sd: dict, dtype: str = "float32",
                  formats=("safetensors",)) -> list[str]:
    """Write the float32 numpy state dict ``sd`` as ``dtype`` in each of ``formats``
    (``safetensors``, ``bin``); returns the file names written."""
    if dtype not in DTYPES:
        raise ConversionError(f"dtype must be one of {'|'.join(DTYPES)}, got {dtype!r}")
    unknown = [f for f in formats if f not in WEIGHT_FORMATS]
    if unknown:
        raise ConversionError(f"unknown weight format(s) {unknown}; one of {list(WEIGHT_FORMATS)}")
    if "safetensors" in formats:
        from safetensors.numpy import save_file
        save_file(_cast(sd, dtype), os.path.join(out_dir, WEIGHTS_NAME), metadata={"format": "pt"})
    if "bin" in formats:
        _write_pytorch_bin(os.path.join(out_dir, PT_WEIGHTS_NAME), sd, dtype)
    return [WEIGHT_FORMATS[f] for f in formats]


def _cast(sd: dict, dtype: str) -> dict:
    if dtype == "float32":
        return sd
    import ml_dtypes  # jax dependency; registers bfloat16 with numpy
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
    return {k: v.astype(np_dtype) for k, v in sd.items()}


def _write_pytorch_bin(file: str, sd: dict, dtype: str) -> None:
    """The layout ``save_pretrained`` of transformers 4.x writes: the full state dict,
    the tied MLM decoder sharing the word embeddings' storage."""
    torch = _torch(f"{file}: writing {PT_WEIGHTS_NAME} needs torch (pip install torch)")
    t = {k: torch.from_numpy(np.array(v, copy=True)).to(getattr(torch, dtype))
         for k, v in sd.items()}
    emb = "bert.embeddings.word_embeddings.weight"
    if "cls.predictions.bias" in t and emb in t:
        t["cls.predictions.decoder.weight"] = t[emb]
    torch.save(t, file)
