"""Where a command's XLA compile time goes: every backend compile of every Python process
it starts (pytest workers and the tests' subprocesses alike), by jitted function and by
test, with cache hits and distinct programs told apart.

    python bench/compile_census.py [--dir D] [--top 15] -- python -m pytest -n 2 tests
    python bench/compile_census.py --dir D --only          # summarise an earlier census

``bench/census/sitecustomize.py`` goes first on PYTHONPATH, so each process logs its
compiles to ``D/<pid>.tsv`` once it imports JAX. Processes started without the caller's
PYTHONPATH (the tests' installed-package venvs) are not counted. A *miss* is a compile the
persistent cache did not serve; its *key* is the cache key, so "misses" against "distinct
keys" says whether the same program was compiled twice. The command's exit status is
this script's; the last line is a key=value summary.
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=None, help="where the per-process logs go (new temp dir)")
    p.add_argument("--top", type=int, default=15, help="rows per table")
    p.add_argument("--only", action="store_true", help="summarise --dir, run nothing")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    return p.parse_args()


def read(log_dir: str) -> list[tuple]:
    """(who, function, seconds, hit, key) for every compile logged under ``log_dir``."""
    rows = []
    for path in sorted(glob.glob(os.path.join(log_dir, "*.tsv"))):
        with open(path) as f:
            for line in f:
                who, fn, secs, hit, key = line.rstrip("\n").split("\t")
                rows.append((who, fn, float(secs), hit == "1", key))
    return rows


def tables(rows: list[tuple]) -> tuple[dict, dict]:
    """Per function: [misses, miss seconds, distinct miss keys, calls]; per test: [miss
    seconds, misses, train-step misses]."""
    by_fn = collections.defaultdict(lambda: [0, 0.0, set(), 0])
    by_who = collections.defaultdict(lambda: [0.0, 0, 0])
    for who, fn, secs, hit, key in rows:
        f = by_fn[fn]
        f[3] += 1
        if not hit:
            f[0], f[1] = f[0] + 1, f[1] + secs
            f[2].add(key)
            w = by_who[who]
            w[0], w[1], w[2] = w[0] + secs, w[1] + 1, w[2] + (fn == "jit(train_step)")
    return by_fn, by_who


def report(rows: list[tuple], top: int) -> str:
    by_fn, by_who = tables(rows)
    total = sum(r[2] for r in rows)
    missed = sum(r[2] for r in rows if not r[3])
    print(f"{len(rows)} compiles, {total:.1f} s; cache misses {missed:.1f} s")
    print(f"\n{'miss s':>8} {'misses':>6} {'keys':>6} {'calls':>6}  function")
    for fn, (n, secs, keys, calls) in sorted(by_fn.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{secs:8.1f} {n:6d} {len(keys):6d} {calls:6d}  {fn}")
    print(f"\n{'miss s':>8} {'misses':>6} {'steps':>6}  test or command")
    for who, (secs, n, steps) in sorted(by_who.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"{secs:8.1f} {n:6d} {steps:6d}  {who}")
    step = by_fn["jit(train_step)"]  # a defaultdict: zeros when none ran
    line = (f"compile_census compiles={len(rows)} seconds={total:.1f} miss_seconds={missed:.1f} "
            f"train_step_misses={step[0]} train_step_programs={len(step[2])} "
            f"train_step_seconds={step[1]:.1f}")
    print(line, flush=True)
    return line


def main() -> int:
    args = _args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.only != (not command):
        raise SystemExit("compile_census: give a command after --, or --dir D --only")
    log_dir = args.dir or tempfile.mkdtemp(prefix="compile-census-")
    rc = 0
    if command:
        os.makedirs(log_dir, exist_ok=True)
        env = dict(os.environ, COMPILE_CENSUS_DIR=log_dir, PYTHONPATH=os.pathsep.join(
            filter(None, [os.path.join(HERE, "census"), os.environ.get("PYTHONPATH")])))
        rc = subprocess.call(command, env=env)
        print(f"command exit status {rc}; logs in {log_dir}", flush=True)
    report(read(log_dir), args.top)
    return rc


if __name__ == "__main__":
    sys.exit(main())
