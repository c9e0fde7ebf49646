"""The stages of one (arm, seed), in this process: pretrain, evaluate on the common
held-out split, fine-tune on the link task. Each stage writes its result last (a
temporary name, then renamed), and is skipped when that result exists.

One process for the whole table: the imports, the tokenized link task and the compiled
steps' persistent cache (``JAX_COMPILATION_CACHE_DIR``, set by the driver) are paid for
once instead of once per stage.
"""
from __future__ import annotations

import json
import logging
import os

from linkbert_jax.ablate import linktask
from linkbert_jax.ablate.report import HELDOUT
from linkbert_jax.data import files
from linkbert_jax.errors import DataError

log = logging.getLogger("linkbert_jax")


def write_json(path: str, obj) -> None:
    files.write_json(path, obj, indent=1)


def read_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_same_split(common_dir: str, other_dir: str) -> None:
    """The two builds hold the same documents with the same train/eval split (the split is
    keyed by seed and document only; checked, not assumed): else a one-line DataError."""
    a = linktask.read_documents_file(common_dir)
    b = linktask.read_documents_file(other_dir)
    if len(a) != len(b):
        raise DataError(f"{other_dir}: {len(b)} documents, the common build {common_dir} "
                        f"has {len(a)}: not the same corpus")
    for x, y in zip(a, b):
        if (x["id"], x["split"]) != (y["id"], y["split"]):
            raise DataError(f"{other_dir}/documents.jsonl line {y['index'] + 1}: document "
                            f"{y['id']!r} split {y['split']!r}, the common build has "
                            f"{x['id']!r} split {x['split']!r} (other seed or eval "
                            f"fraction?)")


def heldout_eval(config, params, data_dir: str) -> dict:
    """``params`` (a run of ``config``) on the eval split of the build ``data_dir`` (the
    whole split, or its first ``eval_max_batches`` batches of ``eval_batch_size``: the
    same pairs for every arm): the trainer's own eval step and evaluation, another
    build's data."""
    from linkbert_jax.pretrain import evaluation, recipe
    from linkbert_jax.pretrain.input_pipeline import TFRecordSource
    source = TFRecordSource(data_dir)
    built = recipe.build(config, source.manifest())
    _, eval_fn = built.compile()
    return evaluation.evaluate(config, source, eval_fn, params, built.data_sharding)


def pretrain_and_eval(config, run_dir: str, common_dir: str) -> dict:
    """Pretrain (resuming from ``run_dir``'s checkpoint) then score on ``common_dir``'s
    eval split; ``RUN/heldout_eval.json``. A run with that file is skipped."""
    from linkbert_jax.pretrain import evaluation, trainer
    done = read_json(os.path.join(run_dir, HELDOUT))
    if done is not None:
        return done
    os.makedirs(run_dir, exist_ok=True)
    state = trainer.train_and_evaluate(config, run_dir)
    ev = heldout_eval(config, state.params, common_dir)
    log.info("held-out (common split) %s: %s", run_dir, evaluation.eval_line(ev))
    write_json(os.path.join(run_dir, HELDOUT), ev)
    return ev


def finetune(ft_config, init: str, files: dict, workdir: str, seed: int,
             cache_dir: str) -> None:
    """Fine-tune ``init`` on the link task (``WORKDIR/seed_<s>/results.json``)."""
    from linkbert_jax.finetune import run
    cfg = ft_config.copy_and_resolve_references()
    run.finetune(cfg, init=init, files=files, workdir=workdir, seeds=[seed],
                 cache_dir=cache_dir)
