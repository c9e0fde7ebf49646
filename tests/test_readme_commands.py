"""The README's commands work as written: each ```bash command (and each inline
``python ...`` command) of the sections below is parsed out of README.md and run.

Placeholders are swapped for small local stand-ins (the gensim Wikipedia sample, generated
JSONL and Parquet corpora, a tiny random BERT with MiniLM's tokenizer, temporary dirs for
gs:// and /shared), every flag the README gives is kept, and flags that only shrink the
run are appended (argparse and absl take the last value). A renamed or removed flag, a
moved file or a changed output layout makes these tests fail.

Each command runs in a scratch directory that looks like the repository root (``configs``
and ``tools`` linked in), so the README's relative paths (``data/mine``, ``runs/base``,
``export/linkbert-base``) are used unchanged.
"""
from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import sys
import time

import pytest

from helpers import REPO as ROOT
from helpers.corpora import synthetic_doc_text, write_jsonl
from helpers.training import free_port
from linkbert_jax.samples import minilm_dir, wikipedia_sample

pytestmark = pytest.mark.slow

PRETRAIN = "Pretrain on your own corpus"
CONTINUE = "Continue from a BERT checkpoint"
PARALLEL = "The same config on a TPU pod slice and on a multi-GPU host"
EXPORT = "Export and use the model in PyTorch"

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


# --------------------------------------------------------------------------- README

def readme_sections() -> dict[str, str]:
    """``## heading`` -> the section's markdown."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    parts = re.split(r"^## +(.+?) *$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def fenced(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", readme_sections()[section], re.M | re.S)


def shell_commands(section: str) -> list[tuple[str, list[str]]]:
    """``(comment above it, argv)`` for each command of the section's ```bash blocks:
    backslash-newlines joined (as the shell does, inside quotes too), commands spanning
    lines in an open quote kept whole, ``#`` comments dropped."""
    out = []
    for block in fenced(section, "bash"):
        comment, pending = "", ""
        for line in block.replace("\\\n", "").splitlines():
            if not pending and (not line.strip() or line.strip().startswith("#")):
                comment = line.strip().lstrip("# ") if line.strip() else ""
                continue
            pending = f"{pending}\n{line}" if pending else line
            try:
                argv = shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the command goes on
                continue
            out.append((comment, argv))
            pending = ""
        assert not pending, f"unterminated command in {section!r}: {pending}"
    return out


def inline_commands(section: str) -> list[list[str]]:
    """Inline code spans of the prose that are commands (``python ...``)."""
    prose = re.sub(r"^```.*?^```", "", readme_sections()[section], flags=re.M | re.S)
    return [shlex.split(" ".join(span.split()))
            for span in re.findall(r"`([^`]+)`", prose) if span.startswith("python ")]


def flag(argv: list[str], name: str) -> str:
    """Last value of ``--name value`` or ``--name=value``."""
    value = None
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(name + "="):
            value = a.split("=", 1)[1]
    assert value is not None, f"{name} not in {argv}"
    return value


def substitute(argv: list[str], places: dict[str, str]) -> list[str]:
    """Each placeholder replaced by its stand-in (one pass: stand-ins are not rescanned)."""
    pattern = re.compile("|".join(map(re.escape, places)))
    return [pattern.sub(lambda m: places[m.group(0)], a) for a in argv]


def shrunk(argv: list[str]) -> list[str]:
    """The README's argv with the shrinking flags appended and ``python`` = this venv's."""
    assert argv[0] == "python", argv
    if argv[1:3] == ["-m", "linkbert_jax.data.build"]:
        extra = BUILD_SHRINK
    elif argv[1:3] == ["-m", "linkbert_jax.main"]:
        extra = TRAIN_SHRINK + (TINY_BERT_OVERRIDES if any(
            a.startswith("--config.init_from_hf=") for a in argv) else [])
    elif argv[1] == "tools/convert_to_pytorch.py":
        extra = []
    else:
        raise AssertionError(f"a README command this test does not know: {argv}")
    return [sys.executable, *argv[1:], *extra]


# --------------------------------------------------------------------------- running

_STARTED: list[subprocess.Popen] = []


def _kill(procs) -> list:
    """Kills those still running; returns them."""
    killed = [p for p in procs if p.poll() is None]
    for p in killed:
        p.kill()
        p.wait()
    return killed


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    """A failed or timed-out test leaves none of its commands running."""
    yield
    _kill(_STARTED)
    _STARTED.clear()


def start(argv: list[str], cwd, log, devices: int = 1) -> subprocess.Popen:
    """Starts a command (output to ``log``) with the installed package, CPU-only JAX
    with ``devices`` devices, and no model hub."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               JAX_NUM_CPU_DEVICES=str(devices), HF_HUB_OFFLINE="1")
    with open(log, "w") as f:
        f.write(shlex.join(argv) + "\n")
        f.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    proc.log = log
    _STARTED.append(proc)
    return proc


def finish(*procs, timeout: float = 300) -> list[str]:
    """Waits for all; on the first failure the others are killed (a lone peer of a
    distributed run would wait for its coordinator). Returns each one's output."""
    deadline = time.monotonic() + timeout
    killed = []
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        killed = _kill(procs)
    outs = [open(p.log).read() for p in procs]
    # Those that failed by themselves first, then those killed (deadline or a peer failed).
    for p, out in sorted(zip(procs, outs), key=lambda po: po[0] in killed):
        assert p.returncode == 0, (f"exit {p.returncode}" + (" (killed)" if p in killed else "")
                                   + f": {out[-4000:]}")
    return outs


def run(argv, cwd, log, devices: int = 1) -> str:
    return finish(start(argv, cwd, log, devices))[0]


def repo_like(path) -> str:
    """A scratch dir that serves as the repository root of the README's commands."""
    os.makedirs(path, exist_ok=True)
    for name in ("tools",):
        os.symlink(os.path.join(ROOT, name), os.path.join(path, name))
    return str(path)


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
    import shutil

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
def continued(tmp_path_factory, places):
    """Runs "Continue from a BERT checkpoint" in its own repo-like dir; later sections
    use its data and run (as a reader following the README would)."""
    cwd = repo_like(tmp_path_factory.mktemp("continue"))
    link(wikipedia_sample(), os.path.join(cwd, "enwiki.xml.bz2"))
    commands = [argv for _, argv in shell_commands(CONTINUE)]
    inline = inline_commands(CONTINUE)
    assert [a[:3] for a in commands] == [["python", "-m", "linkbert_jax.data.build"],
                                          ["python", "-m", "linkbert_jax.main"]]
    assert inline == []
    build, train = (shrunk(substitute(a, places)) for a in commands)
    logs = [run(build, cwd, os.path.join(cwd, "build.log")),
            run(train, cwd, os.path.join(cwd, "train.log"))]
    return cwd, commands, logs


# --------------------------------------------------------------------------- tests

@pytest.mark.timeout(120)
def test_pretrain_on_your_own_corpus(tmp_path, places):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cwd = repo_like(tmp_path)
    link(wikipedia_sample(), tmp_path / "enwiki-latest-pages-articles.xml.bz2")
    rng = random.Random(0)
    n = 40  # JSONL with links by id and by title (some dangling)
    write_jsonl(tmp_path / "docs.jsonl", [
        {"id": f"d{i}", "title": f"Doc {i}", "text": synthetic_doc_text(rng, 12),
         "links": [f"d{(i + 1) % n}", f"Doc {(i + 7) % n}", "nowhere"]} for i in range(n)])
    os.makedirs(tmp_path / "pubmed")
    for part in range(2):  # a directory of Parquet files, citations by pmid
        rows = [{"pmid": 1000 + i, "title": f"Paper {i}", "abstract": synthetic_doc_text(rng, 10),
                 "references": [1000 + (i + 3) % n, 1000 + (i + 5) % n]}
                for i in range(part * n // 2, (part + 1) * n // 2)]
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pubmed" / f"part-{part}.parquet")

    commands = [argv for _, argv in shell_commands(PRETRAIN)]
    assert [a[:3] for a in commands] == [["python", "-m", "linkbert_jax.data.build"]] * 3 + [
        ["python", "-m", "linkbert_jax.main"]]
    commands = [shrunk(substitute(a, places)) for a in commands]
    finish(*(start(a, cwd, tmp_path / f"build{i}.log") for i, a in enumerate(commands[:3])))
    for argv in commands[:3]:
        assert assert_built(cwd, argv)["num_links_resolved"] > 0
    run(commands[3], cwd, tmp_path / "train.log")
    assert_trained(os.path.join(cwd, flag(commands[3], "--workdir")))


@pytest.mark.timeout(120)
def test_continue_from_a_bert_checkpoint(continued):
    cwd, (build, train), logs = continued
    assert_built(cwd, build)
    assert_trained(os.path.join(cwd, flag(train, "--workdir")))
    assert "initialized from Hugging Face" in logs[1]


@pytest.mark.timeout(240)
def test_tpu_pod_multi_gpu_and_several_hosts(tmp_path, places, continued):
    data = os.path.join(continued[0], "data", "wiki512")
    link(data, os.path.join(places["gs://my-bucket"], "data", "wiki512"))
    link(data, os.path.join(places["/shared/"], "data", "wiki512"))
    (_, tpu), (gpu_comment, gpu), (_, host) = shell_commands(PARALLEL)

    # TPU pod slice: the --command each host runs, here on one host with 2 CPU devices.
    assert tpu[:4] == ["gcloud", "compute", "tpus", "tpu-vm"] and "--worker=all" in tpu
    inner = shlex.split(flag(tpu, "--command"))
    assert inner[:3] == ["cd", "linkbert-jax", "&&"], inner
    pod = repo_like(tmp_path / "tpu-host" / "linkbert-jax")
    procs = [start(shrunk(substitute(inner[3:], places)), pod, tmp_path / "tpu.log", devices=2)]

    # One host with N GPUs: N CPU devices.
    n_gpus = int(re.search(r"(\d+) GPUs", gpu_comment).group(1))
    gpu_host = repo_like(tmp_path / "gpu-host")
    link(data, os.path.join(gpu_host, "data", "wiki512"))
    procs.append(start(shrunk(substitute(gpu, places)), gpu_host, tmp_path / "gpu.log",
                       devices=n_gpus))

    # Several hosts: two local processes, the coordinator on a free local port.
    assert "--process_id=0" in host and "1 on host1" in readme_sections()[PARALLEL]
    port = free_port()
    host = substitute(host, {**places, "host0:1234": f"localhost:{port}"})
    procs += [start(shrunk([a.replace("--process_id=0", f"--process_id={i}") for a in host]),
                    repo_like(tmp_path / f"host{i}"), tmp_path / f"host{i}.log")
              for i in range(2)]
    finish(*procs)  # all four at once: mostly single-threaded start-up and compilation
    runs = {"tpu": os.path.join(places["gs://my-bucket"], "runs", "base"),
            "gpu": os.path.join(gpu_host, "runs", "base"),
            "hosts": os.path.join(places["/shared/"], "runs", "large")}
    for workdir in runs.values():
        assert_trained(workdir)
    # base's default mesh (data parallel); all local devices; both processes.
    assert saved_mesh(runs["tpu"]) == [2, 1, 1]
    assert saved_mesh(runs["gpu"]) == [n_gpus, 1, 1]
    assert saved_mesh(runs["hosts"]) == [2, 1, 1]


@pytest.mark.timeout(150)
def test_export_and_use_in_pytorch(continued):
    cwd = continued[0]
    [(_, export)] = shell_commands(EXPORT)
    assert export[:3] == ["python", "tools/convert_to_pytorch.py", "export"]
    out = run(shrunk(export), cwd, os.path.join(cwd, "export.log"))
    assert "verified:" in out
    hf = os.path.join(cwd, flag(export, "--output_dir"))
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert os.path.isfile(os.path.join(hf, name)), name

    # The Python snippet, against that export, with no PYTHONPATH to this repository.
    [snippet] = fenced(EXPORT, "python")
    check = "\nprint('loaded', *(type(m).__name__ for m in (encoder, mlm, clf)))\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", snippet + check], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "loaded BertModel BertForMaskedLM BertForSequenceClassification" in r.stdout
