"""Where fine-tuning starts: a linkbert-jax pretraining workdir or a Hugging Face BERT
directory, as ``(ModelConfig, encoder params, tokenizer directory)``.

- A workdir (``config.json`` + ``checkpoints/``): the latest complete checkpoint
  (``linkbert_jax.checkpoint.checkpoints``) or ``--step``; its tokenizer is the one the corpus
  builder saved with the data (``<data_dir>/tokenizer``), else that of the Hugging Face
  checkpoint it continued (``init_from_hf``).
- Any other directory is read as a Hugging Face BERT (``linkbert_jax.hf.convert.load_hf``).

Only the encoder and the pooler are kept (``embeddings``, ``encoder``, ``pooler``): the
pretraining heads play no part in a task model.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from linkbert_jax.checkpoint import checkpoints
from linkbert_jax.hf import convert, trained_tokenizer, vocabulary
from linkbert_jax.errors import ConfigError
from linkbert_jax.model import NUMERICS_FIELDS, ModelConfig

ENCODER = ("embeddings", "encoder", "pooler")


@dataclasses.dataclass
class Pretrained:
    config: ModelConfig
    params: dict  # {"embeddings", "encoder", "pooler"}: numpy, unstacked layers
    tokenizer_dir: str
    source: str  # what was read, for the log


def is_workdir(path: str) -> bool:
    return (os.path.isfile(os.path.join(path, checkpoints.CONFIG_NAME))
            and os.path.isdir(checkpoints.checkpoint_dir(path)))


def load(path: str, *, step: Optional[int] = None, tokenizer: Optional[str] = None,
         numerics: Optional[dict] = None) -> Pretrained:
    """The encoder of ``path``, with the given numerics (dtype, remat, ...) set."""
    if not path or not os.path.isdir(path):
        raise ConfigError(f"--init {path!r} is not a directory (a linkbert-jax workdir or "
                          f"a Hugging Face BERT directory)")
    if tokenizer:
        trained_tokenizer.check_given(tokenizer)
    numerics = {k: v for k, v in (numerics or {}).items() if k in NUMERICS_FIELDS}
    try:
        if is_workdir(path):
            cfg, params, step = checkpoints.load_params(path, step)
            cfg = cfg.replace(**numerics)
            source = f"workdir {path} at step {step}"
            found = trained_tokenizer.find(checkpoints.read_config(path))
        else:
            if step is not None:
                raise ConfigError(f"--step is for a linkbert-jax workdir; {path} is not one")
            loaded = convert.load_hf(path, **numerics)
            cfg, params = loaded.config, loaded.params
            source = f"Hugging Face directory {path}"
            found = ((path, "") if trained_tokenizer.is_tokenizer_dir(path) else
                     (None, f"no {trained_tokenizer.TOKENIZER_FILE} in it"))
    except (convert.ConversionError, OSError, ValueError) as err:
        raise ConfigError(f"--init {path}: {err}") from None
    params = convert.unstack_layers(dict(params))
    missing = [k for k in ENCODER if k not in params]
    if missing:
        raise ConfigError(f"--init {path}: no {missing[0]} weights")
    if not tokenizer and found[0] is None:
        raise ConfigError(f"--init {path}: no tokenizer: {found[1]}; pass --tokenizer DIR "
                          f"with the vocabulary the model was trained with")
    _check_tokenizer(path, step, tokenizer or found[0])
    return Pretrained(cfg.replace(scan_layers=False), {k: params[k] for k in ENCODER},
                      tokenizer or found[0], source)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as err:
        raise ConfigError(f"tokenizer {path}: cannot load ({err})") from None
    if not getattr(tok, "is_fast", False):
        raise ConfigError(f"tokenizer {path}: not a fast tokenizer (offsets are needed)")
    return tok


def _check_tokenizer(init: str, step: Optional[int], tokenizer: str) -> None:
    """Fine-tuning: ``--tokenizer`` has the vocabulary of the ``--init`` model (a
    workdir's checkpoint record, else its training data's; a Hugging Face directory's
    record or own tokenizer)."""
    if is_workdir(init):
        own = vocabulary.of_checkpoint(init, step)
        if own is None:
            data_dir = checkpoints.read_config(init).get("data_dir") or ""
            own = vocabulary.of_training_data(data_dir)
        own = own and vocabulary.Side(f"--init {init}: {own.what}", own.where, own.sha256)
    elif os.path.abspath(init) != os.path.abspath(tokenizer):
        own = vocabulary.of_hf_dir(init, "--init")
    else:
        own = None
    if own is not None:
        given = vocabulary.Side("--tokenizer", tokenizer, vocabulary.of_tokenizer(tokenizer))
        vocabulary.check(own, given,
                         "pass --tokenizer with the vocabulary the model was trained with")
