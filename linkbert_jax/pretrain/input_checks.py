"""What the data and the initial weights must hold for a run, checked before anything
compiles: the arm's objective and data options, the vocabulary, the sequence length,
enough files per process, and ``init_from_hf``. The shapes' own checks (mesh, batch,
processes) are the recipe's (``linkbert_jax.pretrain.recipe.check_mesh``)."""
from __future__ import annotations

import os

import jax

from linkbert_jax.data import arm_checks, manifests
from linkbert_jax.errors import ConfigError
from linkbert_jax.hf import vocabulary
from linkbert_jax.model import ModelConfig


def check(config, manifest: dict, model_cfg: ModelConfig) -> None:
    """Everything about the inputs that would otherwise fail mid-run, one message each."""
    arm_checks.check(config, manifest)
    mv = manifest.get("vocab_size")
    if mv is not None and int(mv) != model_cfg.vocab_size:
        raise ConfigError(
            f"the data's vocabulary has {mv} tokens but the model's has "
            f"{model_cfg.vocab_size}; set --config.model.vocab_size={mv} or use data "
            f"tokenized with the model's vocabulary")
    try:
        manifests.check_fits(manifest, config.seq_length)
    except ValueError as e:
        raise ConfigError(f"{e}; set --config.seq_length={manifest['max_seq_length']} or "
                          f"build the data with --max_seq_length {config.seq_length}") from None
    _check_files(config, manifest)
    if config.init_from_hf and not os.path.isdir(config.init_from_hf):
        raise ConfigError(f"init_from_hf {config.init_from_hf!r} is not a directory; pass "
                          f"--config.init_from_hf=DIR (a Hugging Face BERT) or '' to start "
                          f"from scratch")
    vocabulary.check_init_from_hf(config.init_from_hf, config.data_dir, manifest)


def _check_files(config, manifest: dict) -> None:
    """Each process reads its own files of the train split (and the eval split if used)."""
    evals = bool(config.eval_every_steps or config.eval_at_end)
    for split in [config.train_split] + ([config.eval_split] if evals else []):
        try:
            manifests.check_enough_files(manifest, split, jax.process_count())
        except ValueError as e:
            raise ConfigError(str(e) + ("" if split == config.train_split else
                                        ", or set --config.eval_every_steps=0 "
                                        "--config.eval_at_end=False")) from None
