"""The export command (``tools/convert_to_pytorch.py``, ``linkbert_jax.hf.export.main``) on a
training workdir: a chosen or the latest step, bitwise, and its errors as one line."""
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO
from helpers.exports import ODD, assert_bitwise_equal, random_params
from linkbert_jax.checkpoint import checkpoints
from linkbert_jax.hf import convert, export
from linkbert_jax.model import ModelConfig
from linkbert_jax.data.samples import minilm_dir

TOOL = os.path.join(REPO, "tools", "convert_to_pytorch.py")


def _run_tool(*args):
    env = dict(os.environ, PYTHONPATH="", HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A training workdir with two checkpoints of a small scanned model."""
    cfg = ModelConfig(**ODD, scan_layers=True)
    wd = str(tmp_path_factory.mktemp("workdir"))
    checkpoints.write_config(wd, {"model": cfg.to_dict(), "seed": 0})
    mgr = checkpoints.manager(wd, async_save=False)
    p5, p9 = random_params(cfg, seed=5), random_params(cfg, seed=9)
    checkpoints.save(mgr, 5, p5, {"mu": np.zeros(3, np.float32)}, {"step": 5})
    checkpoints.save(mgr, 9, p9, {"mu": np.zeros(3, np.float32)}, {"step": 9})
    mgr.wait_until_finished()
    mgr.close()
    return cfg, wd, {5: p5, 9: p9}


def test_tool_export_verify(workdir, tmp_path):
    cfg, wd, saved = workdir
    hf_dir = str(tmp_path / "hf")
    r = _run_tool("export", "--workdir", wd, "--output_dir", hf_dir, "--step", "5",
                  "--tokenizer", minilm_dir())
    assert r.returncode == 0, r.stderr[-3000:]
    assert "verified" in r.stdout and "step 5" in r.stdout, r.stdout
    print(r.stdout)
    assert os.path.exists(os.path.join(hf_dir, "vocab.txt"))
    hf_params = convert.load_hf(hf_dir, scan_layers=True).params
    assert_bitwise_equal(hf_params, saved[5])


def test_tool_latest_step_in_process(workdir, tmp_path, capsys):
    """``main`` without the subcommand word exports the latest step (no verify)."""
    cfg, wd, saved = workdir
    out = str(tmp_path / "hf")
    assert export.main(["--workdir", wd, "--output_dir", out, "--no_verify",
                        "--no_tokenizer"]) == 0
    assert "step 9" in capsys.readouterr().out
    params = convert.load_hf(out, scan_layers=True).params
    assert_bitwise_equal(params, saved[9])


@pytest.mark.parametrize("args,message", [
    (["export", "--workdir", "{tmp}/nowhere", "--output_dir", "{tmp}/o"], "no training config"),
    (["export", "--workdir", "{wd}", "--output_dir", "{tmp}/o", "--step", "7"],
     "no checkpoint at step 7; available: [5, 9]"),
])
def test_tool_errors_are_one_line(workdir, tmp_path, capsys, args, message):
    _, wd, _ = workdir
    args = [a.format(tmp=tmp_path, wd=wd) for a in args]
    assert export.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
