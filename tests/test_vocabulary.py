"""Issue 22, rows 2, 3 and 12: vocabularies are compared by hash end to end (the data's
manifest, each checkpoint, each export), and a resume of another model names the first
real difference. Each refusal is one line naming both sides, exit 2, and leaves every
file as it was."""
import json
import os
import random
import shutil
import subprocess
import sys

import pytest

from helpers import finetune_data
from helpers.corpora import synthetic_doc_text, write_jsonl
from helpers.outcomes import one_error_line, tree_hashes
from helpers.synthetic import SyntheticSource
from helpers.training import small_config
from linkbert_jax import main
from linkbert_jax.checkpoint import checkpoints, tree_diff
from linkbert_jax.hf import export, vocabulary
from linkbert_jax.data import build, manifests
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import pretrained


def _build(root, name: str, cased: bool) -> str:
    """A small real build whose WordPiece vocabulary (100 tokens) is trained on it."""
    rng = random.Random(0)
    n = 24
    write_jsonl(root / f"{name}.jsonl", [{"id": f"d{i}", "title": f"Doc {i}",
                                          "text": synthetic_doc_text(rng, 8),
                                          "links": [f"d{(i + 1) % n}"]} for i in range(n)])
    argv = ["--input", root / f"{name}.jsonl", "--format", "jsonl", "--output_dir",
            root / name, "--train_vocab_size", 100, "--max_seq_length", 64,
            "--num_shards", 2, "--eval_fraction", 0.2, "--no_progress"]
    assert build.main([str(a) for a in argv + (["--cased"] if cased else [])]) == 0
    return str(root / name)


def _config(data_dir, **kw):
    kw = {"seq_length": 64, "num_train_steps": 1, "eval_at_end": False,
          "async_checkpointing": False, **kw}
    c = small_config(data_dir=str(data_dir), **kw)
    c.model.vocab_size = 0  # the data's
    return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Data A (uncased) and B (cased): vocabularies of one size, other tokens; a workdir
    trained one step on A."""
    root = tmp_path_factory.mktemp("vocab")
    a, b = _build(root, "a", cased=False), _build(root, "b", cased=True)
    ma, mb = manifests.read_manifest(a), manifests.read_manifest(b)
    assert ma["vocab_size"] == mb["vocab_size"] and ma["vocab_sha256"] != mb["vocab_sha256"]
    wd = str(root / "wd")
    assert main.run(_config(a), wd) == 0
    return a, b, wd, ma["vocab_sha256"], mb["vocab_sha256"]


def _copy(src, tmp_path, name="wd") -> str:
    shutil.copytree(src, tmp_path / name)
    return str(tmp_path / name)


def _hashes(*dirs) -> dict:
    out = {d: tree_hashes(d) for d in dirs}
    assert any(out.values())
    return out


def test_each_checkpoint_records_the_data_vocabulary(trained):
    a, _, wd, sha_a, _ = trained
    side = vocabulary.of_checkpoint(wd)
    assert side.sha256 == sha_a and side.where == os.path.join(wd, "checkpoints", "1")


def test_resume_on_data_of_another_vocabulary_is_refused(trained, tmp_path, capsys):
    """Row 3: same size, other tokens; it used to warn "data_dir changed" and train."""
    a, b, src, sha_a, sha_b = trained
    wd = _copy(src, tmp_path)
    before = _hashes(wd)
    rc = main.run(_config(b, num_train_steps=2), wd)
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2 and line.startswith("error: vocabulary mismatch: the checkpoint "), line
    assert f"{wd}/checkpoints/1 (vocabulary {sha_a[:12]})" in line
    assert f"the data {b}/manifest.json (vocabulary {sha_b[:12]})" in line
    assert _hashes(wd) == before  # config.json included: refused before anything
    assert main.run(_config(a, num_train_steps=2), wd) == 0  # its own data resumes
    assert checkpoints.latest_checkpoint(wd) == 2
    assert vocabulary.of_checkpoint(wd).sha256 == sha_a


def test_export_refuses_a_tokenizer_of_another_vocabulary(trained, tmp_path, capsys):
    a, b, src, sha_a, sha_b = trained
    wd, out = _copy(src, tmp_path), str(tmp_path / "hf")
    before = _hashes(wd, b)
    rc = export.main(["--workdir", wd, "--output_dir", out, "--tokenizer",
                      f"{b}/tokenizer", "--no_verify"])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2 and f"the checkpoint {wd}/checkpoints/1 (vocabulary {sha_a[:12]})" in line
    assert f"the tokenizer {b}/tokenizer (vocabulary {sha_b[:12]})" in line
    assert not os.path.exists(out) and _hashes(wd, b) == before
    # its own tokenizer (the data's, by default): exported, the hash recorded with it
    assert export.main(["--workdir", wd, "--output_dir", out, "--no_verify"]) == 0
    with open(os.path.join(out, export.STAMP_NAME)) as f:
        assert json.load(f)["vocab_sha256"] == sha_a
    assert vocabulary.of_hf_dir(out, "x").sha256 == sha_a


def test_finetune_tokenizer_of_another_vocabulary_is_refused(trained, tmp_path):
    """Row 2: a 30,522-token model with a 100-token tokenizer used to train, rc 0."""
    a, _, _, sha_a, _ = trained
    hf = finetune_data.tiny_bert(tmp_path / "hf")  # MiniLM's vocabulary
    files = finetune_data.real_task("seqcls", tmp_path / "task", n_train=16, n_dev=8)
    work = tmp_path / "ft"
    before = _hashes(hf, a)
    p = subprocess.run([sys.executable, "-m", "linkbert_jax.finetune", "--task", "seqcls",
                        "--init", hf, "--tokenizer", f"{a}/tokenizer", "--train_file",
                        files["train"], "--validation_file", files["validation"],
                        "--workdir", str(work)], capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    line = one_error_line(p.stderr)
    minilm = vocabulary.of_tokenizer(hf)
    assert p.returncode == 2 and f"--init {hf} (vocabulary {minilm[:12]})" in line, line
    assert f"--tokenizer {a}/tokenizer (vocabulary {sha_a[:12]})" in line
    assert not work.exists() and _hashes(hf, a) == before
    # the same vocabulary in another directory is accepted
    same = _copy(hf, tmp_path, "same_tokenizer")
    assert pretrained.load(hf, tokenizer=same).tokenizer_dir == same


def test_finetune_from_a_workdir_compares_with_its_checkpoint(trained, tmp_path):
    a, b, src, sha_a, sha_b = trained
    wd = _copy(src, tmp_path)
    with pytest.raises(ConfigError) as err:
        pretrained.load(wd, tokenizer=f"{b}/tokenizer")
    assert (f"--init {wd}: the checkpoint {wd}/checkpoints/1 (vocabulary {sha_a[:12]}) vs "
            f"--tokenizer {b}/tokenizer (vocabulary {sha_b[:12]})") in str(err.value)
    assert pretrained.load(wd).tokenizer_dir == os.path.join(a, "tokenizer")


def test_resume_with_another_layer_count_names_the_layer(tmp_path, capsys):
    """Row 12: the message used to name an unrelated leaf (the MLM bias)."""
    wd, source = str(tmp_path / "wd"), SyntheticSource(vocab_size=2048, max_seq_length=32)

    def config(layers):
        c = small_config(num_train_steps=1, async_checkpointing=False, eval_at_end=False)
        c.model.num_hidden_layers = layers
        return c

    assert main.run(config(3), wd, source) == 0
    capsys.readouterr()
    before = _hashes(wd)
    for layers, phrase in ((2, "params['encoder']['layer_2'] is in the checkpoint but not "
                                "in the config"),
                           (4, "params['encoder']['layer_3'] is in the config but not in "
                               "the checkpoint")):
        rc = main.run(config(layers), wd, source)
        line = one_error_line(capsys.readouterr().err)
        assert rc == 2 and f"checkpoint 1 in {wd}/checkpoints was saved by another " \
                           f"model or optimizer ({phrase}" in line, line
        assert "mlm" not in line
    assert _hashes(wd) == before


def test_first_mismatch_in_natural_order():
    def tree(n_layers, width=4):
        return {"encoder": {f"layer_{i}": {"kernel": (width, width)}
                            for i in range(n_layers)}, "mlm": {"bias": (30,)}}

    def leaves(t):
        return {path: (shape, "float32") for path, shape in _flat(t)}

    first = tree_diff.first_mismatch
    assert first("p", leaves(tree(12)), leaves(tree(12))) is None
    assert first("p", leaves(tree(12)), leaves(tree(11))) == (
        "p['encoder']['layer_11'] is in the checkpoint but not in the config")
    wide = tree(12, width=8)
    assert first("p", leaves(tree(12)), leaves(wide)) == (
        "p['encoder']['layer_0']['kernel'] is ((4, 4), 'float32') in the checkpoint, "
        "((8, 8), 'float32') in the config")
    assert tree_diff.natural(("layer_2",)) < tree_diff.natural(("layer_10",))


def _flat(t, prefix=()):
    for k, v in t.items():
        if isinstance(v, dict):
            yield from _flat(v, prefix + (k,))
        else:
            yield prefix + (k,), v
