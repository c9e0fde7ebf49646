"""The Beam builder on the local runner vs the local builder: time and peak memory per process.

    python bench/beam_build.py [--docs 100000] [--scale 4] [--workers 2] [--quick]

``make bench`` runs it with the defaults; see docs/beam.md for measured figures.

Generates a linked JSONL corpus (short documents of 2-5 sentences, ~5 links each by id,
some by title, some dangling) in 16 files, at ``--docs`` and ``--scale`` x ``--docs``
documents. At each size it builds with the local builder (``--workers``) and with the
Beam builder on the DirectRunner (``--direct_num_workers`` = ``--workers``,
multi_processing), polls the peak RSS (``VmHWM``) of every process of each build, and
checks that both outputs are byte-identical. The Beam figures are the launcher+runner
process (the local runner keeps the shuffled data in its memory: on Dataflow, Flink or
Spark the shuffle lives in the service) and the largest SDK worker process. The last line
is a key=value summary.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ("alpha beta gamma delta river mountain city music paper protein cell history war "
         "king language science theory number light water stone forest bridge engine "
         "market island garden winter summer planet signal").split()
NUM_FILES = 16


def write_corpus(path: str, num_docs: int, seed: int = 0) -> int:
    """16 JSONL files of ``num_docs`` documents; returns the number of link names."""
    rng = random.Random(seed)
    os.makedirs(path, exist_ok=True)
    links_total = 0
    per_file = -(-num_docs // NUM_FILES)
    for k in range(NUM_FILES):
        with open(os.path.join(path, f"part-{k:03d}.jsonl"), "w") as f:
            for i in range(k * per_file, min(num_docs, (k + 1) * per_file)):
                sents = [" ".join(rng.choices(WORDS, k=rng.randint(5, 12))).capitalize() + "."
                         for _ in range(rng.randint(2, 5))]
                links = [f"d{rng.randrange(num_docs)}" for _ in range(rng.randint(3, 7))]
                if i % 10 == 0:
                    links += [f"Doc {rng.randrange(num_docs)}", f"missing {i}"]
                links_total += len(links)
                f.write(json.dumps({"id": f"d{i}", "title": f"Doc {i}", "links": links,
                                    "text": " ".join(sents)}) + "\n")
    return links_total


class PeakRss:
    """Polls the peak RSS (VmHWM) of a process and all its descendants."""

    def __init__(self, root: int, period: float = 0.2):
        self.root, self.period, self.peaks, self.names = root, period, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        parent = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
        tree, frontier = [self.root], [self.root]
        while frontier:
            frontier = [p for p, pp in parent.items() if pp in frontier]
            tree += frontier
        return tree

    def _run(self):
        while not self._stop.is_set():
            for pid in self._tree():
                try:
                    with open(f"/proc/{pid}/status") as f:
                        st = dict(line.split(":", 1) for line in f if ":" in line)
                    hwm = int(st["VmHWM"].split()[0]) / 1024  # absent in a zombie
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        name = f.read().replace(b"\0", b" ").decode()[:200]
                    self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
                    self.names[pid] = name or self.names.get(pid, "")
                except (OSError, KeyError):
                    continue
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._thread.join()


def run_build(module: str, argv: list[str]) -> dict:
    cmd = [sys.executable, "-m", f"linkbert_jax.data.{module}", *argv]
    env = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    rss = PeakRss(p.pid)
    out, err = p.communicate()
    secs = time.perf_counter() - t
    rss.stop()
    if p.returncode != 0:
        sys.exit(f"{module} failed:\n{err.decode()[-3000:]}")
    workers = [v for pid, v in rss.peaks.items()
               if pid != p.pid and "sdk_worker_main" in rss.names.get(pid, "")]
    others = [v for pid, v in rss.peaks.items() if pid != p.pid]
    return {"seconds": secs, "main_mb": rss.peaks.get(p.pid, 0.0),
            "worker_mb": max(workers or others or [0.0]), "processes": len(rss.peaks)}


def output_hash(out: str) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(out)):
        if os.path.isfile(os.path.join(out, name)):
            with open(os.path.join(out, name), "rb") as f:
                h.update(name.encode() + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def measure(work: str, num_docs: int, workers: int, tokenizer: str) -> dict:
    src = os.path.join(work, f"corpus_{num_docs}")
    links = write_corpus(src, num_docs)
    common = ["--input", src, "--format", "jsonl", "--tokenizer", tokenizer,
              "--max_seq_length", "128", "--num_shards", "8", "--overwrite"]
    outs = {k: os.path.join(work, f"{k}_{num_docs}") for k in ("local", "beam")}
    local = run_build("build", common + ["--output_dir", outs["local"], "--workers",
                                         str(workers), "--no_progress"])
    beam = run_build("beam_build", common + [
        "--output_dir", outs["beam"], f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing"])
    with open(os.path.join(outs["beam"], "manifest.json")) as f:
        m = json.load(f)
    same = output_hash(outs["local"]) == output_hash(outs["beam"])
    for path in [src, *outs.values()]:
        shutil.rmtree(path)
    return {"docs": num_docs, "links": links, "examples": sum(m["num_examples"].values()),
            "resolved": m["num_links_resolved"], "local": local, "beam": beam, "same": same}


def report(r: dict) -> None:
    for side in ("local", "beam"):
        s = r[side]
        print(f"  {side:5s}: {s['seconds']:7.1f}s = {r['docs'] / s['seconds']:7.0f} docs/s; "
              f"peak RSS main process {s['main_mb']:.0f} MB, largest other process "
              f"{s['worker_mb']:.0f} MB ({s['processes']} processes)")
    print(f"  outputs byte-identical: {r['same']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work_dir", default="/tmp/linkbert_beam_bench")
    ap.add_argument("--quick", action="store_true", help="500 and 1,000 documents")
    args = ap.parse_args()
    if args.quick:
        args.docs, args.scale = 500, 2
    from linkbert_jax.data.samples import minilm_dir

    os.makedirs(args.work_dir, exist_ok=True)
    results = []
    for n in (args.docs, args.docs * args.scale):
        print(f"{n} documents (load average {os.getloadavg()[0]:.1f}):", flush=True)
        results.append(measure(args.work_dir, n, args.workers, minilm_dir()))
        print(f"  {results[-1]['links']} link names, {results[-1]['resolved']} resolved, "
              f"{results[-1]['examples']} examples")
        report(results[-1])
    small, big = results
    print("beam_build " + " ".join(
        f"{k}={v}" for k, v in {
            "docs_small": small["docs"], "docs_big": big["docs"], "links_big": big["links"],
            "beam_docs_per_s": round(big["docs"] / big["beam"]["seconds"]),
            "local_docs_per_s": round(big["docs"] / big["local"]["seconds"]),
            "beam_worker_mb_small": round(small["beam"]["worker_mb"]),
            "beam_worker_mb_big": round(big["beam"]["worker_mb"]),
            "beam_runner_mb_small": round(small["beam"]["main_mb"]),
            "beam_runner_mb_big": round(big["beam"]["main_mb"]),
            "local_mb_small": round(max(small["local"]["main_mb"], small["local"]["worker_mb"])),
            "local_mb_big": round(max(big["local"]["main_mb"], big["local"]["worker_mb"])),
            "identical": int(small["same"] and big["same"])}.items()))


if __name__ == "__main__":
    main()
