"""The benchmark scripts run, shrunk, and end with their key=value summary line.

Smoke tests only: they check that each script still works against the current code and
prints the figures the README's performance table is made of (finite, positive), never
how fast anything is (figures come from full runs on a quiet machine, see the README).
"""
import json
import math
import os
import subprocess
import sys

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str, tmp_path) -> dict:
    """Run ``bench/<script>`` and parse its last line ``name k=v ...`` into a dict."""
    p = subprocess.run([sys.executable, os.path.join(REPO, "bench", script), *args],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{script} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    last = p.stdout.strip().splitlines()[-1].split()
    assert last[0] == script.removesuffix(".py"), f"{script}: last line is {last!r}"
    return {k: _number(v) for k, v in (kv.split("=", 1) for kv in last[1:])}


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def assert_positive(figures: dict, *keys: str) -> None:
    for k in keys:
        assert k in figures, f"{k} missing from {sorted(figures)}"
        assert math.isfinite(figures[k]) and figures[k] > 0, (k, figures[k])


def assert_shares(figures: dict) -> None:
    """The profile's three shares of the thunk time, each printed to 3 decimals: each in
    [0, 1], and their sum 1 up to those three roundings (0.0005 each)."""
    shares = [figures[k] for k in ("dot_share", "layout_share", "other_share")]
    assert all(0 <= s <= 1 for s in shares) and abs(sum(shares) - 1) <= 0.0015 + 1e-9, figures


def test_train_step_and_profile(tmp_path):
    f = run_bench("train_step.py", "--shapes", "tiny", "--rounds", "1", "--warmup", "1",
                  "--block", "2", tmp_path=tmp_path)
    assert_positive(f, "ratio_tiny", "mfu_tiny", "tok_s_ours_tiny", "tok_s_theirs_tiny",
                    "peak_gflops_tiny")
    f = run_bench("profile_step.py", "--shape", "tiny", "--steps", "1",
                  "--trace_dir", str(tmp_path / "trace"), tmp_path=tmp_path)
    assert f["shape"] == "tiny"
    assert_positive(f, "step_ms", "dot_share", "dot_gflops")
    assert_shares(f)


def test_gpu_step_runs_on_cpu_without_tensorflow(tmp_path):
    """The GPU bench, shrunk to a tiny model on CPU (no cuDNN here: XLA and the fused
    call, gathers by dot), against eager PyTorch: JSON lines and the summary line."""
    out = tmp_path / "gpu.jsonl"
    f = run_bench("gpu_step.py", "--shapes", "tiny", "--batch", "2", "--seq", "32",
                  "--ours", "xla,fused/dot", "--hf", "eager", "--rounds", "1", "--warmup",
                  "1", "--block", "1", "--peak_n", "256", "--out", str(out),
                  tmp_path=tmp_path)
    assert_positive(f, "ours_xla_tok_s_tiny", "ours_fused/dot_tok_s_tiny",
                    "ours_xla_vs_hf_eager_tiny", "ours_xla_mfu_measured_tiny",
                    "ours_xla_compile_s_tiny")
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["shape"] == "tiny" and record["useful_gflop_per_step"] > 0
    assert record["hf_eager_tok_s"] > 0 and record["peak_tflops_measured"] > 0


def test_input_pipeline_compile_and_build(tmp_path):
    f = run_bench("input_pipeline.py", "--seconds", "1", "--records", "1024",
                  "--data_dir", str(tmp_path / "records"), tmp_path=tmp_path)
    assert_positive(f, "seq_per_s_128", "seq_per_s_512")
    f = run_bench("compile.py", "--archs", "tiny", "--seq_length", "128", tmp_path=tmp_path)
    assert_positive(f, "tiny_scan_s", "tiny_unscan_s")
    f = run_bench("build.py", "--min_text_mb", "1", "--work_dir", str(tmp_path / "build"),
                  tmp_path=tmp_path)
    assert_positive(f, "tokens_per_s", "tokenizer_tokens_per_s", "ratio", "rss_1x_mb")


def test_checkpoint_verify(tmp_path):
    f = run_bench("checkpoint_verify.py", "--quick", tmp_path=tmp_path)
    assert f["arch"] == "tiny"
    assert_positive(f, "state_mb", "save_sums_s", "restore_s", "verify_s", "ratio")


def test_beam_build(tmp_path):
    f = run_bench("beam_build.py", "--quick", "--work_dir", str(tmp_path / "beam"),
                  tmp_path=tmp_path)
    assert_positive(f, "beam_docs_per_s", "local_docs_per_s", "beam_worker_mb_big",
                    "beam_runner_mb_big", "local_mb_big")
    assert f["identical"] == 1  # the two builders wrote the same bytes at both sizes


def test_finetune(tmp_path):
    f = run_bench("finetune.py", "--quick", "--block", "2", tmp_path=tmp_path)
    assert_positive(f, "ratio_full_quick", "ex_s_ours_full_quick", "ex_s_theirs_full_quick",
                    "ratio_text_quick", "ratio_text_cut_grouped_quick",
                    "ratio_text_vs_dynamic_quick", "ex_s_trainer_dynamic_text_quick",
                    "peak_gflops_quick", "mfu_text_quick", "mfu_text_dynamic_quick")
    assert f["mfu_text_quick"] < 1.5, f  # useful FLOPs only: far below any peak when tiny


def test_profile_finetune(tmp_path):
    f = run_bench("profile_finetune.py", "--shape", "quick", "--trace_dir",
                  str(tmp_path / "trace"), tmp_path=tmp_path)
    assert f["shape"] == "quick"
    assert_positive(f, "step_ms", "dot_share")
    assert 0.2 < f["fill"] <= 1  # real tokens over the packed rows' positions
    assert_shares(f)


def test_link_sources(tmp_path):
    f = run_bench("link_sources.py", "--sizes", "500,1000", "--sampled", "3000",
                  "--query_rows", "64", tmp_path=tmp_path)
    assert_positive(f, "ms_per_row_1000", "ms_per_row_3000", "rss_mb_3000", "core_hours_1m",
                    "core_hours_6m")


def test_profile_sums_the_device_kernels_of_a_gpu_trace(tmp_path, monkeypatch):
    """On a GPU, the profile sums the kernels of the trace's ``/device:`` processes (the
    host's events of the same trace are left out), by kernel name."""
    import gzip
    monkeypatch.syspath_prepend(os.path.join(REPO, "bench"))
    import profile_step
    events = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
              {"ph": "M", "name": "process_name", "pid": 7,
               "args": {"name": "/device:GPU:0"}},
              {"ph": "X", "pid": 1, "name": "PjitFunction(train)", "dur": 900},
              {"ph": "X", "pid": 1, "name": "input_scatter_fusion.1", "dur": 50},
              {"ph": "X", "pid": 7, "name": "input_scatter_fusion_2", "dur": 30},
              {"ph": "X", "pid": 7, "name": "input_scatter_fusion_1", "dur": 20},
              {"ph": "X", "pid": 7, "name": "nvjet_hsh_128x256", "dur": 40}]
    (tmp_path / "run").mkdir()
    with gzip.open(tmp_path / "run" / "host.trace.json.gz", "wt") as f:
        json.dump({"traceEvents": events}, f)
    on_device = profile_step.thunk_times(str(tmp_path), device_only=True)
    assert on_device == {"input_scatter_fusion_2": 30, "input_scatter_fusion_1": 20,
                         "nvjet_hsh_128x256": 40}
    assert profile_step.MATMULS.search("nvjet_hsh_128x256")
    assert profile_step.thunk_times(str(tmp_path))["input_scatter_fusion"] == 50


def test_compile_census_tells_misses_hits_and_programs(tmp_path, monkeypatch):
    """Two processes compile the same two programs: the second is served by the
    persistent cache; the census counts 4 compiles, 2 misses of 2 distinct programs."""
    monkeypatch.syspath_prepend(os.path.join(REPO, "bench"))
    import compile_census
    code = ("import jax, jax.numpy as jnp; f = jax.jit(lambda x: x * 2 + 1); "
            "f(jnp.ones(3)); f(jnp.ones(4))")
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    logs = tmp_path / "logs"
    for _ in range(2):
        p = subprocess.run([sys.executable, os.path.join(REPO, "bench", "compile_census.py"),
                            "--dir", str(logs), "--", sys.executable, "-c", code],
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1].startswith("compile_census compiles=")
    by_fn, by_who = compile_census.tables(compile_census.read(str(logs)))
    misses, _, keys, calls = by_fn["jit(<lambda>)"]
    assert (misses, len(keys), calls) == (2, 2, 4)
    # the subprocesses of a test are counted under it (PYTEST_CURRENT_TEST is inherited)
    assert list(by_who) == [os.environ["PYTEST_CURRENT_TEST"].split(" (")[0]]
