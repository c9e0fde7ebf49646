"""The README's commands work as written: each block of README.md tagged
``<!-- test: NAME -->`` is parsed (helpers/readme.py) and its commands are run.

They run the way a user has them: with the package installed in a fresh venv (not
editable; helpers/installed.py) and from scratch directories outside the checkout, so
the README's relative paths (``data/mine``, ``runs/base``, ``export/linkbert-base``) are
used unchanged and nothing may come from the checkout. Placeholders are swapped for small
local stand-ins (the gensim Wikipedia sample, generated JSONL and Parquet corpora, a tiny
random BERT with MiniLM's tokenizer, temporary dirs for gs:// and /shared), every flag the
README gives is kept, and flags that only shrink the run are appended (argparse and absl
take the last value). A renamed or removed flag or config, a module that is not shipped or
a changed output layout makes these tests fail; the README's prose is never read.
"""
from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess

import pytest

from helpers import installed, processes
from helpers.corpora import synthetic_doc_text, write_jsonl
from helpers.readme import block, commands, flag, substitute
from helpers.training import free_port
from linkbert_jax.data.samples import minilm_dir, wikipedia_sample

pytestmark = pytest.mark.slow

# Appended to the README's flags: only make the run small (last value wins).
BUILD_SHRINK = ["--num_shards", "2", "--workers", "2", "--max_seq_length", "64",
                "--no_progress"]
TRAIN_SHRINK = ["--config.num_train_steps=2", "--config.global_batch_size=8",
                "--config.seq_length=64", "--config.masking.max_predictions=10",
                "--config.log_every_steps=1", "--config.eval_max_batches=1",
                "--config.model.num_hidden_layers=1", "--config.microbatches=1",
                "--config.peak_flops_per_device=1e12"]  # skip the start-up matmul timing
# The stand-in for bert-base/large-cased: a tiny random BertForMaskedLM with MiniLM's
# (uncased, 30,522) WordPiece tokenizer; configs base and large are shrunk to it.
TINY_BERT = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                 num_attention_heads=2, intermediate_size=64)
TINY_BERT_OVERRIDES = [f"--config.model.{k}={v}" for k, v in TINY_BERT.items()]
STEPS = 2
GPUS = 8  # the multi-GPU host, as CPU devices


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    """A failed or timed-out test leaves none of its commands running."""
    yield
    processes.kill_started()


def shrunk(argv: list[str], python: str) -> list[str]:
    """The README's argv with the shrinking flags appended, ``python`` the fresh venv's."""
    assert argv[0] == "python", argv
    if argv[1:3] == ["-m", "linkbert_jax.data.build"]:
        extra = BUILD_SHRINK
    elif argv[1:3] == ["-m", "linkbert_jax.main"]:
        extra = TRAIN_SHRINK + (TINY_BERT_OVERRIDES if any(
            a.startswith("--config.init_from_hf=") for a in argv) else [])
    elif argv[1:3] == ["-m", "linkbert_jax.hf.export"]:
        extra = []
    else:
        raise AssertionError(f"a README command this test does not know: {argv}")
    return [python, *argv[1:], *extra]


def start(argv, cwd, log, python: str, devices: int = 1):
    """A command as a user of the fresh venv runs it: CPU-only JAX with ``devices``
    devices, no model hub."""
    os.makedirs(cwd, exist_ok=True)
    env = installed.env(python, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices),
                        HF_HUB_OFFLINE="1")
    return processes.start(argv, cwd, log, env)


def run(argv, cwd, log, python: str) -> str:
    return processes.finish(start(argv, cwd, log, python))[0]


def link(target, path) -> None:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    os.symlink(str(target), str(path))


# --------------------------------------------------------------------------- checks

def assert_built(cwd, argv) -> dict:
    out = os.path.join(cwd, flag(argv, "--output_dir"))
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert [f["name"] for f in manifest["files"]["train"]] == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert manifest["num_examples"]["train"] > 0 and manifest["num_examples"]["eval"] > 0
    assert os.path.isfile(os.path.join(out, "documents.jsonl"))
    assert os.path.isfile(os.path.join(out, "tokenizer", "tokenizer.json"))
    return manifest


def assert_trained(workdir) -> None:
    rows = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, STEPS + 1))
    assert any("eval_drp_accuracy" in r for r in rows)
    assert os.listdir(os.path.join(workdir, "checkpoints")) == [str(STEPS)]


def saved_mesh(workdir) -> list[int]:
    """The (data, fsdp, tensor) mesh the run's parameters were saved from (orbax's
    ``_sharding`` record of the last checkpoint)."""
    with open(os.path.join(workdir, "checkpoints", str(STEPS), "params", "_sharding")) as f:
        shardings = {tuple(json.loads(v)["shape"]) for v in json.load(f).values()}
    assert len(shardings) == 1, shardings
    return list(shardings.pop())


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """README placeholder -> local stand-in (absolute paths; relative ones are made in
    each command's working directory)."""
    from transformers import BertConfig, BertForMaskedLM

    root = tmp_path_factory.mktemp("standins")
    bert = str(root / "models" / "bert-base-cased")
    BertForMaskedLM(BertConfig(**TINY_BERT)).save_pretrained(bert)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        shutil.copy(os.path.join(minilm_dir(), name), bert)
    return {"/path/to/bert-base-cased": bert, "/models/bert-base-cased": bert,
            "/models/bert-large-cased": bert, "gs://my-bucket": str(root / "gcs" / "my-bucket"),
            "/shared/": str(root / "shared") + "/"}


@pytest.fixture(scope="module")
def continued(tmp_path_factory, places, installed_python):
    """Runs the block ``continue`` in a scratch dir; later tests use its data and run (as
    a reader following the README would)."""
    cwd = str(tmp_path_factory.mktemp("continue"))
    link(wikipedia_sample(), os.path.join(cwd, "enwiki.xml.bz2"))
    argvs = commands("continue")
    assert [a[:3] for a in argvs] == [["python", "-m", "linkbert_jax.data.build"],
                                      ["python", "-m", "linkbert_jax.main"]]
    build, train = (shrunk(substitute(a, places), installed_python) for a in argvs)
    logs = [run(build, cwd, os.path.join(cwd, "build.log"), installed_python),
            run(train, cwd, os.path.join(cwd, "train.log"), installed_python)]
    return cwd, argvs, logs


def _corpora(tmp_path) -> None:
    """The inputs of the block ``pretrain-build``: a Wikipedia dump, JSONL with links by
    id and by title (some dangling), a directory of Parquet files with citations by pmid."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    link(wikipedia_sample(), tmp_path / "enwiki-latest-pages-articles.xml.bz2")
    rng = random.Random(0)
    n = 40
    write_jsonl(tmp_path / "docs.jsonl", [
        {"id": f"d{i}", "title": f"Doc {i}", "text": synthetic_doc_text(rng, 12),
         "links": [f"d{(i + 1) % n}", f"Doc {(i + 7) % n}", "nowhere"]} for i in range(n)])
    os.makedirs(tmp_path / "pubmed")
    for part in range(2):
        rows = [{"pmid": 1000 + i, "title": f"Paper {i}", "abstract": synthetic_doc_text(rng, 10),
                 "references": [1000 + (i + 3) % n, 1000 + (i + 5) % n]}
                for i in range(part * n // 2, (part + 1) * n // 2)]
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pubmed" / f"part-{part}.parquet")


# --------------------------------------------------------------------------- tests

@pytest.mark.timeout(300)
def test_pretrain_on_your_own_corpus(tmp_path, places, installed_python):
    _corpora(tmp_path)
    builds, [train] = commands("pretrain-build"), commands("pretrain-train")
    assert [a[:3] for a in builds] == [["python", "-m", "linkbert_jax.data.build"]] * 3
    assert train[:3] == ["python", "-m", "linkbert_jax.main"]
    builds = [shrunk(substitute(a, places), installed_python) for a in builds]
    processes.finish(*(start(a, tmp_path, tmp_path / f"build{i}.log", installed_python)
                       for i, a in enumerate(builds)))
    for argv in builds:
        assert assert_built(tmp_path, argv)["num_links_resolved"] > 0
    run(shrunk(substitute(train, places), installed_python), tmp_path, tmp_path / "train.log", installed_python)
    assert_trained(os.path.join(tmp_path, flag(train, "--workdir")))


@pytest.mark.timeout(300)
def test_continue_from_a_bert_checkpoint(continued):
    cwd, (build, train), logs = continued
    assert_built(cwd, build)
    assert_trained(os.path.join(cwd, flag(train, "--workdir")))
    assert "initialized from Hugging Face" in logs[1]


@pytest.mark.timeout(400)
def test_tpu_pod_multi_gpu_and_several_hosts(tmp_path, places, continued, installed_python):
    data = os.path.join(continued[0], "data", "wiki512")
    link(data, os.path.join(places["gs://my-bucket"], "data", "wiki512"))
    link(data, os.path.join(places["/shared/"], "data", "wiki512"))
    tpu, gpu, host = commands("parallel")
    py = installed_python

    # TPU pod slice: the --command each host runs, here on one host with 2 CPU devices.
    assert tpu[:4] == ["gcloud", "compute", "tpus", "tpu-vm"] and "--worker=all" in tpu
    inner = shlex.split(flag(tpu, "--command"))
    assert inner[:3] == ["cd", "linkbert-jax", "&&"], inner
    pod = tmp_path / "tpu-host" / "linkbert-jax"
    procs = [start(shrunk(substitute(inner[3:], places), py), pod, tmp_path / "tpu.log", py,
                   devices=2)]

    # One host with GPUS GPUs: GPUS CPU devices.
    gpu_host = tmp_path / "gpu-host"
    link(data, gpu_host / "data" / "wiki512")
    procs.append(start(shrunk(substitute(gpu, places), py), gpu_host, tmp_path / "gpu.log",
                       py, devices=GPUS))

    # Several hosts: process 0 and 1, the coordinator on a free local port.
    assert "--process_id=0" in host
    host = substitute(host, {**places, "host0:1234": f"localhost:{free_port()}"})
    procs += [start(shrunk([a.replace("--process_id=0", f"--process_id={i}") for a in host],
                           py), tmp_path / f"host{i}", tmp_path / f"host{i}.log", py)
              for i in range(2)]
    processes.finish(*procs)  # all four at once: mostly single-threaded start-up
    runs = {"tpu": os.path.join(places["gs://my-bucket"], "runs", "base"),
            "gpu": os.path.join(gpu_host, "runs", "base"),
            "hosts": os.path.join(places["/shared/"], "runs", "large")}
    for workdir in runs.values():
        assert_trained(workdir)
    # base's default mesh (data parallel); all local devices; both processes.
    assert saved_mesh(runs["tpu"]) == [2, 1, 1]
    assert saved_mesh(runs["gpu"]) == [GPUS, 1, 1]
    assert saved_mesh(runs["hosts"]) == [2, 1, 1]


@pytest.mark.timeout(300)
def test_export_and_use_in_pytorch(continued, installed_python):
    cwd = continued[0]
    [export] = commands("export")
    assert export[:3] == ["python", "-m", "linkbert_jax.hf.export"]
    out = run(shrunk(export, installed_python), cwd, os.path.join(cwd, "export.log"),
              installed_python)
    assert "verified:" in out
    hf = os.path.join(cwd, flag(export, "--output_dir"))
    for name in ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                 "tokenizer_config.json"):
        assert os.path.isfile(os.path.join(hf, name)), name

    # The Python snippet, against that export (transformers only).
    check = "\nprint('loaded', *(type(m).__name__ for m in (encoder, mlm, clf)))\n"
    r = subprocess.run([installed_python, "-c", block("export-python") + check], cwd=cwd,
                       env=installed.env(installed_python), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "loaded BertModel BertForMaskedLM BertForSequenceClassification" in r.stdout
