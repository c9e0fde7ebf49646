"""The export as LinkBERT users load it: with the oldest transformers that installs on this
Python (4.16.2, which reads only pytorch_model.bin: the ``--pytorch_bin`` export), with a
4.x that reads safetensors (4.25.1: the default export) and with the 5.x of this
environment. In each: the six Auto classes load it with only their task heads newly
initialised, the encoder and MLM outputs match JAX, and the slow and fast tokenizers give
the same ids as the tokenizer here.

The old environments are separate virtual environments built once by helpers.hf_envs
(exact pins, torch from the machine's disk) and cached between runs.
"""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import transformers

from helpers import TESTS, hf_envs
from helpers.exports import TEXTS, make_workdir
from hf_compat import check_export
from linkbert_jax.hf import export
from linkbert_jax.model import LinkBert
from linkbert_jax.data.samples import minilm_dir

CHECK = os.path.join(TESTS, "hf_compat", "check_export.py")
TASK_HEADS = {
    "AutoModel": [], "AutoModelForMaskedLM": [],
    "AutoModelForSequenceClassification": ["classifier.bias", "classifier.weight"],
    "AutoModelForTokenClassification": ["classifier.bias", "classifier.weight"],
    "AutoModelForQuestionAnswering": ["qa_outputs.bias", "qa_outputs.weight"],
    "AutoModelForMultipleChoice": ["classifier.bias", "classifier.weight"],
}


@pytest.fixture(scope="module")
def envs():
    return {**hf_envs.ensure(), "5.x": sys.executable}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The default export and the --pytorch_bin one of the same checkpoint, and the JAX
    model's outputs on the texts (padded batch) as the reference."""
    root = tmp_path_factory.mktemp("compat")
    cfg, saved = make_workdir(str(root / "wd"), steps=(3,), init_from_hf=minilm_dir())
    dirs = {}
    for name, extra in (("default", ["--no_verify"]), ("bin", ["--pytorch_bin"])):
        dirs[name] = str(root / name)
        assert export.main(["--workdir", str(root / "wd"), "--output_dir", dirs[name],
                            "--tokenizer", minilm_dir(), *extra]) == 0
    tok = transformers.AutoTokenizer.from_pretrained(dirs["default"])
    enc = tok(TEXTS, padding=True, return_tensors="np")
    L = enc["input_ids"].shape[1]
    out = LinkBert(cfg).apply(
        {"params": saved[3]}, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
        np.broadcast_to(np.arange(L), enc["input_ids"].shape), deterministic=True)
    ref = str(root / "reference.npz")
    np.savez(ref, **{k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")},
             last_hidden_state=np.asarray(out.last_hidden_state, np.float64),
             pooled=np.asarray(out.pooled_output, np.float64),
             mlm_logits=np.asarray(jax.device_get(out.mlm_logits), np.float64)[..., :cfg.vocab_size])
    texts = str(root / "texts.json")
    with open(texts, "w") as f:
        json.dump(TEXTS, f)
    return dirs, ref, texts, tok(TEXTS)["input_ids"]


@pytest.fixture(scope="module")
def reports(envs, exported):
    """What each transformers makes of the export: the old ones in their own venvs, side
    by side (2 cores), the 5.x one in this process meanwhile."""
    dirs, ref, texts, _ = exported
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    procs = {v: subprocess.Popen([envs[v], CHECK, dirs[which], ref, texts, dirs["default"]],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
             for v, which in (("4.16.2", "bin"), ("4.25.1", "default"))}
    out = {"5.x": check_export.report(dirs["default"], ref, texts, dirs["default"])}
    for v, p in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-4000:]
        out[v] = json.loads(stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("version", ["4.16.2", "4.25.1", "5.x"])
def test_auto_classes_load_the_export(reports, exported, version):
    """4.16.2 loads the --pytorch_bin export, 4.25.1 and 5.x the default one."""
    ids = exported[3]
    got = reports[version]
    print(version, got["diff"], got["tokenizers"])
    if version != "5.x":
        assert got["transformers"] == version
    for name, heads in TASK_HEADS.items():
        info = got["classes"][name]
        assert info["missing_keys"] == heads, (name, info)  # only the task heads are new
        assert info["mismatched_keys"] == [], (name, info)
        assert not [k for k in info["unexpected_keys"]
                    if not k.startswith(("cls.", "drp.", "bert.pooler."))], (name, info)
    assert all(d <= 1e-4 for d in got["diff"].values()), got["diff"]
    assert got["tokenizers"] == ["BertTokenizerFast", "BertTokenizer"] or version == "5.x"
    assert got["ids_fast"] == ids and got["ids_slow"] == ids

    # Why --pytorch_bin exists: before 4.23 the default (safetensors) export is unreadable.
    if version == "4.16.2":
        assert "pytorch_model.bin" in got["other_error"], got["other_error"]
    else:
        assert got["other_error"] is None
