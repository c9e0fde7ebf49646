#!/usr/bin/env python
"""Convert between a linkbert-jax training workdir and a Hugging Face BERT directory.

Export the latest (or ``--step N``) checkpoint of a workdir, then reload it with
``transformers`` and compare outputs on a random batch before reporting success::

    python tools/convert_to_pytorch.py export --workdir WORKDIR --output_dir HF_DIR \
        [--step N] [--tokenizer TOKENIZER_DIR] [--dtype float32] [--no_verify]

(``export`` may be left out.) Import a Hugging Face BERT directory (BertModel,
BertForMaskedLM or BertForPreTraining) as params that training can start from::

    python tools/convert_to_pytorch.py import --hf_dir HF_DIR --output_dir PARAMS_DIR \
        [--scan_layers] [--vocab_pad_multiple 128]

PARAMS_DIR holds ``params/`` (orbax) and ``model_config.json``; read it with
``linkbert_jax.checkpoints.load_params_dir``.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _export(args) -> None:
    from linkbert_jax import checkpoints, convert

    config, params, step = checkpoints.load_params(args.workdir, args.step)
    convert.save_hf(config, params, args.output_dir, tokenizer=args.tokenizer,
                    dtype=args.dtype)
    print(f"exported {args.workdir} step {step} -> {args.output_dir} ({args.dtype})")
    if args.no_verify:
        return
    try:
        import torch  # noqa: F401
    except ImportError:
        raise convert.ConversionError("verification needs torch; install it or pass "
                                      "--no_verify") from None
    from linkbert_jax import hf_torch
    diffs = hf_torch.verify_hf(config, params, args.output_dir)
    print("max abs diff JAX vs transformers: " +
          ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    tol = args.atol if args.dtype == "float32" else max(args.atol, 0.1)
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    if bad:
        raise convert.ConversionError(f"verification failed: {bad} above tolerance {tol}")
    print(f"verified: {args.output_dir} loads with transformers and matches (atol {tol})")


def _import(args) -> None:
    from linkbert_jax import checkpoints, convert

    overrides = {}
    if args.vocab_pad_multiple is not None:
        overrides["vocab_pad_multiple"] = args.vocab_pad_multiple
    config, params, info = convert.load_hf(args.hf_dir, scan_layers=args.scan_layers,
                                           seed=args.seed, return_info=True, **overrides)
    checkpoints.save_params(args.output_dir, params, config)
    print(f"imported {info['file']} -> {args.output_dir} "
          f"({config.num_hidden_layers} layers, hidden {config.hidden_size}, "
          f"vocab {config.vocab_size}, scan_layers={config.scan_layers})")
    if info["initialized"]:
        print(f"initialised (absent from the checkpoint): {', '.join(info['initialized'])}")
    if info["ignored"]:
        print(f"ignored: {', '.join(info['ignored'])}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("export", "import", "-h", "--help"):
        argv = ["export"] + argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="training workdir checkpoint -> Hugging Face dir")
    ex.add_argument("--workdir", required=True)
    ex.add_argument("--output_dir", required=True)
    ex.add_argument("--step", type=int, default=None, help="default: latest checkpoint")
    ex.add_argument("--tokenizer", default=None, help="directory with tokenizer files")
    ex.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    ex.add_argument("--no_verify", action="store_true")
    ex.add_argument("--atol", type=float, default=1e-4,
                    help="max abs diff allowed in verification (float32)")
    im = sub.add_parser("import", help="Hugging Face dir -> params dir for training")
    im.add_argument("--hf_dir", required=True)
    im.add_argument("--output_dir", required=True)
    im.add_argument("--scan_layers", action="store_true", help="stack layers (scan layout)")
    im.add_argument("--vocab_pad_multiple", type=int, default=None)
    im.add_argument("--seed", type=int, default=0, help="for heads absent from the checkpoint")
    args = parser.parse_args(argv)
    try:  # orbax's read-only notices are not for the user of this tool
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    try:
        (_export if args.command == "export" else _import)(args)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as err:
        # ConversionError is a ValueError; all of these carry a one-line message.
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
