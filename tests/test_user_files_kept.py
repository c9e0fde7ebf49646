"""Issue 22, acceptance: nothing a user wrote is deleted by any command. Each command
that writes to a directory (the corpus builder, training, the export, fine-tuning) runs
with a user's files planted in and next to its output directory (a Hugging Face model
directory, a lone ``model.safetensors``, a ``notes.txt``) and with its output directory
*being* such a directory; after each run, refused or not, every planted file is byte for
byte what it was.

The chain is row 8's too: training is given a relative ``--config.data_dir``; the
export and fine-tuning then run from another directory and find the tokenizer.
"""
import os
import shutil
import stat
import subprocess
import sys

import pytest

from helpers.corpora import ring_corpus
from helpers.finetune_data import real_task, tiny_bert
from helpers.outcomes import one_error_line, sha256_of
from helpers.training import TWO_STEPS
from linkbert_jax import main
from linkbert_jax.hf import export, export_dir
from linkbert_jax.config_defaults import load_config_file
from linkbert_jax.data import build
from linkbert_jax.data.samples import minilm_dir

TRAIN = TWO_STEPS


class Planted:
    """A user's files in a few directories, and their hashes when planted."""

    def __init__(self, model: str):
        self.model, self.hashes = model, {}

    def plant(self, d, *, hf_dir: str = "hf_model") -> str:
        """``d/notes.txt``, ``d/model.safetensors`` and ``d/<hf_dir>/`` (a BERT)."""
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "notes.txt"), "w") as f:
            f.write(f"my notes about {d}\n")
        shutil.copy(os.path.join(self.model, "model.safetensors"), d)
        shutil.copytree(self.model, os.path.join(d, hf_dir))
        for root, _, names in os.walk(d):
            for n in names:
                path = os.path.join(root, n)
                self.hashes[path] = sha256_of(path)
        return str(d)

    def hf_dir(self, d) -> str:
        """``d`` itself a user's BERT directory."""
        shutil.copytree(self.model, d)
        for n in os.listdir(d):
            self.hashes[os.path.join(d, n)] = sha256_of(os.path.join(d, n))
        return str(d)

    def assert_kept(self):
        now = {p: sha256_of(p) if os.path.isfile(p) else None for p in self.hashes}
        changed = sorted(p for p in self.hashes if now[p] != self.hashes[p])
        assert not changed, f"user files changed or gone: {changed}"


def _error(capsys) -> str:
    return one_error_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("users")


@pytest.fixture(scope="module")
def user(root):
    planted = Planted(tiny_bert(root / ".bert_source"))
    planted.plant(root)  # next to every output directory below
    return planted


def _build_argv(root, out, *extra):
    corpus = ring_corpus(root / "corpus.jsonl")
    return [str(a) for a in ("--input", corpus, "--format", "jsonl", "--output_dir", out,
                             "--tokenizer", minilm_dir(), "--max_seq_length", 64,
                             "--num_shards", 1, "--num_eval_shards", 1, "--eval_fraction",
                             0.25, "--seed", 1, "--no_progress", *extra)]


@pytest.fixture(scope="module")
def data(root, user):
    out = root / "data"
    assert build.main(_build_argv(root, out)) == 0
    return out


def test_build_keeps_user_files(root, user, data, capsys):
    hf = user.hf_dir(root / "b_model")
    assert build.main(_build_argv(root, hf)) == 2
    assert "was not written by the builder" in _error(capsys)
    user.assert_kept()
    mixed = user.plant(root / "b_mixed")  # --overwrite: builds next to the user's files
    assert build.main(_build_argv(root, mixed, "--overwrite")) == 0
    assert build.main(_build_argv(root, mixed, "--overwrite")) == 0  # and again
    user.assert_kept()
    user.plant(data, hf_dir="my_model")  # files added to a build, then rebuilt
    assert build.main(_build_argv(root, data, "--overwrite")) == 0
    user.assert_kept()


@pytest.fixture(scope="module")
def workdir(root, user, data):
    wd = user.plant(root / "wd")  # a workdir holding a user's files
    old = os.getcwd()
    os.chdir(root)
    try:  # a relative data_dir (row 8)
        assert main.run(load_config_file("tiny", dict(TRAIN, data_dir="data")), "wd") == 0
    finally:
        os.chdir(old)
    return wd


def test_train_keeps_user_files(root, user, workdir, capsys):
    user.assert_kept()
    config = load_config_file("tiny", dict(TRAIN, data_dir=str(root / "data")))
    assert main.run(config, workdir) == 0  # finished: runs nothing, writes its config
    user.assert_kept()
    hf = user.hf_dir(root / "t_model")
    assert main.run(config, hf) == 2
    assert "config.json was not written by training" in _error(capsys)
    user.assert_kept()


def test_export_keeps_user_files(root, user, workdir, capsys, monkeypatch):
    monkeypatch.chdir(root / "hf_model")  # anywhere but where training ran
    base = ["--workdir", workdir, "--no_verify"]
    hf = user.hf_dir(root / "e_model")
    for target in (hf, root, root / "hf_model", workdir):
        for extra in ([], ["--overwrite"]):
            assert export.main([*base, "--output_dir", str(target), *extra]) == 2
            assert "was not written by an export" in _error(capsys)
            user.assert_kept()
    out = str(root / "export")
    assert export.main([*base, "--output_dir", out]) == 0, capsys.readouterr().err
    assert "tokenizer.json" in os.listdir(out)  # found from another directory (row 8)
    assert export.main([*base, "--output_dir", out, "--overwrite"]) == 0
    user.assert_kept()


def _finetune(root, workdir, out):
    files = real_task("seqcls", root / "task", n_train=16, n_dev=8)
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="1", HF_HUB_OFFLINE="1",
               LINKBERT_HUGEPAGES="0")
    return subprocess.run(
        [sys.executable, "-m", "linkbert_jax.finetune", "--task", "seqcls", "--init",
         workdir, "--train_file", files["train"], "--validation_file", files["validation"],
         "--workdir", str(out), "--config.max_seq_length=32", "--config.batch_size=8",
         "--config.eval_batch_size=8", "--config.num_train_epochs=1"],
        capture_output=True, text=True, timeout=600, env=env, cwd=root / "hf_model")


@pytest.mark.slow
def test_finetune_keeps_user_files(root, user, workdir):
    refused = user.plant(root / "ft_refused")
    user.hf_dir(os.path.join(refused, "model"))
    p = _finetune(root, workdir, refused)
    assert p.returncode == 2, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert "the fine-tuned model's directory" in last and "choose another --workdir" in last
    assert "Traceback" not in p.stderr and "step 1/" not in p.stderr  # before training
    user.assert_kept()

    ft = user.plant(root / "ft")  # the run writes next to the user's files
    for _ in range(2):  # the second run replaces the model the first one wrote
        p = _finetune(root, workdir, ft)
        assert p.returncode == 0, p.stderr[-3000:]
        user.assert_kept()
    model = os.path.join(ft, "model")
    marker = export_dir.read_marker(model)
    assert marker["written_by"] == "linkbert_jax.finetune"
    modes = {stat.S_IMODE(os.stat(os.path.join(model, n)).st_mode) for n in os.listdir(model)}
    assert modes == {0o666 & ~_umask()}  # row 13 for fine-tuning's export


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
