"""The newcomer's command, shrunk: every stage runs for real (build from the Python
documentation, ``make pydocs``, with MiniLM's vocabulary, continue MiniLM as a LinkBERT, export, PyTorch
fill-mask and DRP), then a re-run reuses them. The two runs are the README's block
``demo`` (``python -m linkbert_jax.demo``, then ``linkbert-demo``), from the package
installed in a fresh venv (not editable), in a directory outside the checkout."""
import json
import os
import subprocess

import pytest
import transformers

from helpers import installed, readme
from linkbert_jax.data import samples
from linkbert_jax.demo import CORPORA, eval_pairs

pytestmark = pytest.mark.slow

SHRINK = ["--steps", "12", "--batch_size", "8", "--evals", "1", "--eval_batches", "4"]


def _demo(command: list, workdir, python: str):
    """``command`` (``python`` is the fresh venv's; a console script is on its PATH)."""
    command = [python, *command[1:]] if command[0] == "python" else command
    docs = {samples.PYDOCS_ENV: samples.python_docs()}  # the checkout's `make pydocs`
    out = subprocess.run([*command, "--workdir", str(workdir), *SHRINK], cwd=workdir.parent,
                         env=installed.env(python, **docs), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_demo_end_to_end_then_reuses(tmp_path, installed_python):
    first, second = readme.commands("demo")
    assert (first, second) == (["python", "-m", "linkbert_jax.demo"], ["linkbert-demo"])
    workdir = tmp_path / "demo"
    text = _demo(first, workdir, installed_python)
    for stage in ("1/4 data", "2/4 train", "3/4 export", "4/4 show", "summary"):
        assert stage in text
    assert "fill-mask" in text and CORPORA["pydocs"]["fill_mask"][0] in text
    assert "verified:" in text  # the export matched transformers
    for rel in ("contiguous", "random", "linked"):
        assert f"gold {rel}" in text
    assert "DRP accuracy" in text and "4,395 Python documentation pages" in text
    assert "(on 256 of the " in text  # 4 eval batches of 64 pairs, said so
    png = workdir / "train" / "training_curves.png"
    assert png.exists() and png.stat().st_size > 10_000
    assert (workdir / "export" / "model.safetensors").exists()
    check_export(workdir)

    again = _demo(second, workdir, installed_python)
    assert "reusing" in again.split("2/4 train")[0]  # the builder's "already built"
    assert "training already finished" in again
    assert "already holds the export of step 12" in again


def check_export(workdir):
    """The export as a LinkBERT user takes it: fine-tuning dropout 0.1 (the demo pretrains
    with 0.0), slow = fast tokenizer ids on the demo's sentences, and a model card whose
    figures are the run's (metrics.jsonl, the manifest)."""
    export, train = workdir / "export", workdir / "train"
    config = json.loads((export / "config.json").read_text())
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.1
    pairs = [transformers.AutoTokenizer.from_pretrained(export).decode(ex["input_ids"][1:-1])
             for ex in eval_pairs(str(workdir / "data")).values()]
    texts = list(CORPORA["pydocs"]["fill_mask"]) + pairs
    ids = {fast: transformers.AutoTokenizer.from_pretrained(export, use_fast=fast)(texts)
           ["input_ids"] for fast in (True, False)}
    assert ids[True] == ids[False]

    card = (export / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: fill-mask\n")
    assert "| dropout in pretraining | hidden 0.0, attention 0.0 |" in card
    assert "| dropout in config.json | hidden 0.1, attention 0.1: for fine-tuning" in card
    rows = [json.loads(line) for line in (train / "metrics.jsonl").read_text().splitlines()]
    last_train = [r for r in rows if "mlm_loss" in r][-1]
    last_eval = [r for r in rows if "eval_mlm_loss" in r][-1]
    keys = ("mlm_loss", "mlm_accuracy", "drp_loss", "drp_accuracy", "drp_accuracy_contiguous",
            "drp_accuracy_random", "drp_accuracy_linked")
    for name, row, prefix in (("train", last_train, ""), ("eval", last_eval, "eval_")):
        line = f"| {name} | {row['step']} | " + " | ".join(f"{row[prefix + k]:.4f}" for k in keys)
        assert line + " |" in card, line
    m = json.loads((workdir / "data" / "manifest.json").read_text())
    assert f"| documents | {m['num_documents']:,} (train " in card
    assert f"| links resolved | {m['num_links_resolved']:,} |" in card
    for split, rel in (("train", "relations"), ("eval", "relations_eval")):
        counts = ", ".join(f"{r} {n:,}" for r, n in m[rel].items())
        assert f"| pairs, {split} | {m['num_examples'][split]:,} ({counts}) |" in card
    assert "python -m linkbert_jax.main --config" in card  # the training command, recorded
    assert "python -m linkbert_jax.hf.export --workdir" in card


PROBE = """
import inspect, json
from importlib.metadata import entry_points
found = {}
for e in entry_points(group="console_scripts"):
    if e.module.split(".")[0] == "linkbert_jax":
        function = e.load()
        found[e.name] = (inspect.getsourcefile(function), inspect.isfunction(function))
print(json.dumps(found))
"""


def test_console_scripts_are_installed(installed_python, tmp_path):
    """Every console script is in the fresh venv's bin/ and names a function of the
    installed package's own copy (all loaded in one process: the commands define their
    absl flags when they start, not at import)."""
    env = installed.env(installed_python)
    found = json.loads(subprocess.run([installed_python, "-c", PROBE], cwd=tmp_path,
                                      env=env, check=True, capture_output=True,
                                      text=True).stdout)
    assert sorted(found) == ["linkbert-aot", "linkbert-build", "linkbert-demo",
                             "linkbert-export", "linkbert-finetune", "linkbert-train"]
    venv = os.path.dirname(os.path.dirname(installed_python))
    for name, (origin, defined) in found.items():
        assert origin.startswith(venv) and defined, (name, origin)
        assert os.access(os.path.join(venv, "bin", name), os.X_OK), name
