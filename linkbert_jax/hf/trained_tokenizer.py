"""The tokenizer a pretraining workdir's model was trained with, for the export and for
fine-tuning's ``--init WORKDIR``: the training data's (the manifest's ``tokenizer_dir``
under ``data_dir``), else that of the Hugging Face checkpoint training continued
(``init_from_hf``). When none is there, the reason names every place looked at.
"""
from __future__ import annotations

import os
from typing import Optional

from linkbert_jax.errors import ConfigError

TOKENIZER_FILE = "tokenizer.json"


def is_tokenizer_dir(path: str) -> bool:
    return bool(path) and os.path.isfile(os.path.join(path, TOKENIZER_FILE))


def _data_tokenizer(data_dir: str) -> str:
    from linkbert_jax.data import manifests
    name = "tokenizer"
    try:
        name = manifests.read_manifest(data_dir).get("tokenizer_dir") or name
    except (OSError, ValueError):
        pass  # no (readable) manifest: the builder's default name
    return os.path.join(data_dir, name)


def _places(train_config: dict) -> list:
    """``(directory, what it is)`` in the order they are tried."""
    out = []
    data_dir = train_config.get("data_dir") or ""
    if data_dir:
        rel = "" if os.path.isabs(data_dir) else (
            f", relative to where training ran, here {os.path.abspath(data_dir)}")
        out.append((_data_tokenizer(data_dir),
                    f"the training data's tokenizer (data_dir {data_dir!r}{rel})"))
    if train_config.get("init_from_hf"):
        out.append((train_config["init_from_hf"], "the tokenizer of init_from_hf"))
    return out


def find(train_config: dict) -> tuple[Optional[str], str]:
    """``(directory, "")`` of the workdir's tokenizer, or ``(None, why)`` with ``why``
    naming each place looked at."""
    places = _places(train_config)
    for path, _ in places:
        if is_tokenizer_dir(path):
            return path, ""
    if not places:
        return None, "the workdir's config.json names no data_dir and no init_from_hf"
    return None, "; ".join(f"{what}: no {TOKENIZER_FILE} in {path}" for path, what in places)


def check_given(path: str, flag: str = "--tokenizer") -> str:
    """``path`` when it is a tokenizer directory; else a :class:`ConfigError` naming it."""
    if not os.path.isdir(path):
        raise ConfigError(f"{flag} {path}: not a directory")
    if not is_tokenizer_dir(path):
        raise ConfigError(f"{flag} {path}: no {TOKENIZER_FILE} there (a fast tokenizer "
                          f"directory, as the corpus builder or save_pretrained writes)")
    return path
