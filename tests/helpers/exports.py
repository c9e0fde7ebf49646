"""Training workdirs to export: real orbax checkpoints of a tiny model with random weights.

The model has MiniLM's vocabulary (30,522), so the real MiniLM tokenizer fits it, and is
small enough (1.5M parameters) to export and reload in a few seconds.
"""
import json
import os

import jax
import numpy as np

from linkbert_jax.checkpoint import checkpoints, step_config
from linkbert_jax.hf import export
from linkbert_jax.model import ModelConfig, init_params

TINY = dict(vocab_size=30522, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
            intermediate_size=100)
# The demo's fill-mask sentences plus accents, CJK and a pair: slow and fast tokenizers
# must agree on them.
TEXTS = ["The capital of France is [MASK].",
         "Anarchism is a political [MASK] that rejects hierarchy.",
         "Héllo Wörld: naïve café, Zürich 1999-2024 (¿qué?) 東京!",
         "LinkBERT pretrains on documents and the hyperlinks between them."]

# A small BERT whose sizes divide nothing evenly (odd vocabulary, 3 heads of 16).
ODD = dict(vocab_size=1001, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
           intermediate_size=100)


def run_export(capsys, *args) -> tuple[int, str, str]:
    """The export command in-process: (exit status, stdout, stderr)."""
    rc = export.main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_bitwise_equal(a, b):
    """Same tree, and every leaf the same dtype, shape and bytes."""
    la, ta = jax.tree_util.tree_flatten_with_path(a)
    lb, tb = jax.tree_util.tree_flatten_with_path(b)
    assert ta == tb
    for (path, x), (_, y) in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, jax.tree_util.keystr(path)
        assert x.tobytes() == y.tobytes(), jax.tree_util.keystr(path)


def random_params(cfg: ModelConfig, seed: int = 0):
    """Every leaf random (the MLM bias too); vocabulary padding rows zero (not exported)."""
    shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(
        lambda s: (0.1 * rng.standard_normal(s.shape)).astype(np.float32), shapes)
    params["embeddings"]["word_embeddings"]["embedding"][cfg.vocab_size:] = 0
    params["mlm"]["bias"][cfg.vocab_size:] = 0
    return params


def make_workdir(path: str, steps=(5, 9), *, init_from_hf: str = "", data_dir: str = "",
                 dropout: float = 0.0, metrics: bool = True) -> tuple:
    """A workdir as training leaves it: config.json, one checkpoint per step (random
    params, seeded by the step), metrics.jsonl rows and a command history.
    Returns ``(ModelConfig, {step: params})``."""
    cfg = ModelConfig(**TINY, scan_layers=True, hidden_dropout_prob=dropout,
                      attention_probs_dropout_prob=dropout)
    config = {
        "model": cfg.to_dict(), "seed": 0, "init_from_hf": init_from_hf, "data_dir": data_dir,
        "num_train_steps": max(steps), "global_batch_size": 8, "seq_length": 32,
        "learning_rate": 1e-3, "warmup_steps": 1}
    checkpoints.write_config(path, config)
    checkpoints.record_command(path, ["/usr/bin/python3", "-m", "linkbert_jax.main",
                                      "--config", "configs/tiny.py", "--workdir", path])
    mgr = checkpoints.manager(path, async_save=False)
    saved = {}
    for step in steps:
        saved[step] = random_params(cfg, seed=step)
        checkpoints.save(mgr, step, saved[step], {"mu": np.zeros(3, np.float32)},
                         {"step": step, step_config.META_KEY: step_config.record(config, path)})
    mgr.wait_until_finished()
    mgr.close()
    if metrics:
        with open(os.path.join(path, "metrics.jsonl"), "w") as f:
            for step in steps:
                f.write(json.dumps({"step": step, "mlm_loss": 10.0 - step / 10,
                                    "mlm_accuracy": step / 100, "drp_loss": 1.1,
                                    "drp_accuracy": 0.4}) + "\n")
    return cfg, saved
