r"""Export a training workdir's checkpoint as a Hugging Face BERT directory, verified.

    python -m linkbert_jax.hf.export --workdir WORKDIR --output_dir HF_DIR [--step N] \
        [--tokenizer DIR | --no_tokenizer] [--overwrite] [--pytorch_bin] \
        [--finetune_dropout P] [--dtype float32] [--no_verify]

(``tools/convert_to_pytorch.py export ...`` runs the same.) Takes the latest complete
checkpoint (or ``--step N``) and writes config.json, model.safetensors (and
pytorch_model.bin with ``--pytorch_bin``, for transformers before 4.23), a clean tokenizer
(``--tokenizer``, by default the one the training data was built with; none found is an
error unless ``--no_tokenizer``), a model card and ``linkbert_export.json`` (what wrote
the directory). The directory is reloaded with ``transformers`` and compared with the
JAX model before it is put in place. HF_DIR must be new or empty; ``--overwrite``
replaces an earlier export, never another directory (``linkbert_jax.hf.export_dir``); a
failed export leaves HF_DIR as it was. Training starts from a Hugging Face directory
directly (``--config.init_from_hf=DIR``), so there is no import command.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

from linkbert_jax import errors
from linkbert_jax.errors import ConversionError, run_cli
from linkbert_jax.hf import export_dir, trained_tokenizer
from linkbert_jax.hf.export_dir import EXPORT_FILES, MARKER_NAME as STAMP_NAME  # noqa: F401

DEFAULT_DROPOUT = 0.1  # BERT's fine-tuning dropout


def finetune_dropout(train_config: dict, flag: Optional[float]) -> tuple[float, float, str]:
    """(hidden, attention) dropout for the exported config, and where it comes from:
    ``flag``, else the starting checkpoint's config, else BERT's 0.1."""
    if flag is not None:
        return flag, flag, "--finetune_dropout"
    start = train_config.get("init_from_hf")
    if not start:
        return DEFAULT_DROPOUT, DEFAULT_DROPOUT, "BERT's default (trained from scratch)"
    from linkbert_jax.hf import hf_files
    try:
        hf = hf_files.read_hf_config(start)
    except ConversionError:
        return (DEFAULT_DROPOUT, DEFAULT_DROPOUT,
                f"BERT's default (the starting checkpoint {start} is not readable)")
    return (hf.get("hidden_dropout_prob", DEFAULT_DROPOUT),
            hf.get("attention_probs_dropout_prob", DEFAULT_DROPOUT),
            f"the starting checkpoint {start}")


def training_manifest(train_config: dict) -> tuple[Optional[dict], str]:
    """The training data's manifest (None when it is gone) and its path."""
    from linkbert_jax.data import manifests
    data_dir = train_config.get("data_dir") or ""
    return (manifests.read_manifest(data_dir, missing_ok=True),
            manifests.manifest_path(data_dir))


def tokenizer_of(args, train_config: dict) -> Optional[str]:
    """``--tokenizer``, else the workdir's (:mod:`linkbert_jax.hf.trained_tokenizer`); None
    only with ``--no_tokenizer``. A missing tokenizer is an error naming what is missing."""
    if args.no_tokenizer:
        return None
    if args.tokenizer:
        return trained_tokenizer.check_given(args.tokenizer)
    found, why = trained_tokenizer.find(train_config)
    if found is None:
        raise ConversionError(f"no tokenizer for the export of {args.workdir}: {why}; pass "
                              f"--tokenizer DIR, or --no_tokenizer to export the weights "
                              f"without one")
    return found


def export(args, command: list) -> str:
    """The export command; returns the output directory."""
    from linkbert_jax.checkpoint import checkpoints, step_config
    from linkbert_jax.hf import convert, hf_files, model_card, vocabulary

    export_dir.check(args.output_dir, args.overwrite, export_dir.PRETRAINING)
    _, params, step = checkpoints.load_params(args.workdir, args.step)
    trained_with = step_config.read(args.workdir, step)  # not config.json: a later start's
    train_config, config = trained_with["config"], step_config.model_config(trained_with)
    manifest, manifest_path = training_manifest(train_config)
    tokenizer = tokenizer_of(args, train_config)
    hidden, attention, source = finetune_dropout(train_config, args.finetune_dropout)
    vocab = vocabulary.check_export(args.workdir, step, tokenizer, vocabulary.of_manifest(
        os.path.dirname(manifest_path), manifest))
    print(f"exporting {args.workdir} step {step} -> {args.output_dir} ({args.dtype})")
    print(f"dropout in config.json (for fine-tuning): hidden {hidden}, attention {attention}"
          f", from {source}; pretraining ran with {config.hidden_dropout_prob} / "
          f"{config.attention_probs_dropout_prob} (set it with --finetune_dropout)")
    print(f"tokenizer: {tokenizer}" if tokenizer else
          "tokenizer: none (--no_tokenizer): the export has no tokenizer; give it the one "
          "the model was trained with before using it")
    formats = ("safetensors", "bin") if args.pytorch_bin else ("safetensors",)
    out = config.replace(hidden_dropout_prob=hidden, attention_probs_dropout_prob=attention)
    facts = gather_facts(args.workdir, trained_with, (manifest, manifest_path), step, config,
                         out, params, source, command,
                         [hf_files.WEIGHT_FORMATS[f] for f in formats], args.dtype)
    stamp = {"written_by": export_dir.PRETRAINING, "step": step,
             "workdir": os.path.abspath(args.workdir), "dtype": args.dtype,
             "tokenizer": tokenizer and os.path.abspath(tokenizer), vocabulary.KEY: vocab}
    with export_dir.staged(args.output_dir, stamp, overwrite=args.overwrite) as tmp:
        convert.save_hf(out, params, tmp, tokenizer=tokenizer, dtype=args.dtype,
                        weight_formats=formats)
        if not args.no_verify:
            facts.verification = verify(config, params, tmp, args.dtype, args.atol)
        model_card.write(tmp, facts)
        stamp.update(weights=facts.weight_files, verification=facts.verification)
    print(f"{'verified and ' if facts.verification else ''}exported: {args.output_dir} ("
          + ", ".join(sorted(os.listdir(args.output_dir))) + ")")
    return args.output_dir


def gather_facts(workdir: str, trained_with: dict, manifest: tuple, step: int, config,
                 exported, params, dropout_source: str, command: list, weight_files: list,
                 dtype: str):
    """What the model card says (see :mod:`linkbert_jax.hf.model_card`); ``trained_with``:
    the step's config and commands (``step_config.read``)."""
    from linkbert_jax.hf import model_card
    from linkbert_jax.hf.param_mapping import count_params

    train_row, eval_row = model_card.last_rows(os.path.join(workdir, "metrics.jsonl"), step)
    return model_card.Facts(
        step=step, config=exported,
        pretrain_dropout=(config.hidden_dropout_prob, config.attention_probs_dropout_prob),
        dropout_source=dropout_source,
        params_encoder=count_params(params, encoder_only=True, config=config),
        params_total=count_params(params, config=config) - (
            config.padded_vocab_size - config.vocab_size) * (config.hidden_size + 1),
        train_config=trained_with["config"], manifest=manifest[0], manifest_path=manifest[1],
        train_row=train_row, eval_row=eval_row,
        train_commands=trained_with["commands"], export_command=command,
        weight_files=weight_files, dtype=dtype)


def verify(config, params, hf_dir: str, dtype: str, atol: float) -> dict:
    """Reload ``hf_dir`` with ``transformers`` and compare with the JAX model; check the
    ``pytorch_model.bin`` against the safetensors and the slow tokenizer against the
    fast one. Returns the max abs diffs; a :class:`ConversionError` past tolerance."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConversionError("verification needs torch; install it or pass "
                              "--no_verify") from None
    from linkbert_jax.hf import hf_torch
    diffs = hf_torch.verify_hf(config, params, hf_dir)
    print("max abs diff JAX vs transformers: " +
          ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    tol = atol if dtype == "float32" else max(atol, 0.1)
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    if bad:
        raise ConversionError(f"verification failed: {bad} above tolerance {tol}")
    hf_torch.check_pytorch_bin(hf_dir)
    hf_torch.check_slow_tokenizer(hf_dir)
    print(f"verified: loads with transformers and matches (atol {tol})")
    return diffs


def parse_args(argv):
    p = errors.ArgumentParser(prog="python -m linkbert_jax.hf.export",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--step", type=int, default=None,
                   help="default: the latest complete checkpoint")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer directory (default: the training data's tokenizer/, "
                        "else init_from_hf's; none found is an error)")
    p.add_argument("--no_tokenizer", action="store_true",
                   help="export the weights without a tokenizer (say so explicitly)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --output_dir when an earlier export wrote it (never "
                        "another directory)")
    p.add_argument("--pytorch_bin", action="store_true",
                   help="also write pytorch_model.bin (transformers 4.9 to 4.22 read only it)")
    p.add_argument("--finetune_dropout", type=float, default=None,
                   help="dropout written to config.json (default: the starting checkpoint's, "
                        f"else {DEFAULT_DROPOUT})")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--no_verify", action="store_true")
    p.add_argument("--atol", type=float, default=1e-4,
                   help="max abs diff allowed in verification (float32)")
    args = p.parse_args(argv)
    if args.tokenizer and args.no_tokenizer:
        p.error("--tokenizer and --no_tokenizer exclude each other")
    if args.finetune_dropout is not None and not 0 <= args.finetune_dropout < 1:
        p.error(f"--finetune_dropout {args.finetune_dropout} is not in [0, 1)")
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:  # the word tools/convert_to_pytorch.py has always accepted
        argv = argv[1:]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:  # orbax's read-only notices are not for the user of this tool
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    return run_cli(lambda: export(parse_args(argv),
                                  ["python", "-m", "linkbert_jax.hf.export", *argv]))



cli = errors.console_script(main)  # python -m, and the console script


if __name__ == "__main__":
    cli()
