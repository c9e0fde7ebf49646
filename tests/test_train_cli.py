"""The entry point: config tiny on a CPU with the bar overrides alone (real TFRecord
input pipeline), and one clear line (no traceback) for configuration errors."""
import json
import os
import subprocess
import sys

from helpers import REPO
from helpers.shards import write_shards


def _main(*args, timeout=400):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "linkbert_jax.main", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_tiny_config_runs_on_cpu_with_bar_overrides(tmp_path):
    data = str(tmp_path / "data")
    write_shards(data, None)
    work = str(tmp_path / "work")
    args = ["--config", "tiny", "--workdir", work, f"--config.data_dir={data}",
            "--config.num_train_steps=2", "--config.global_batch_size=8",
            "--config.checkpoint_every_steps=1", "--config.seed=0", "--config.mesh.data=-1",
            "--config.mesh.fsdp=1", "--config.mesh.tensor=1"]
    r = _main(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(x) for x in open(os.path.join(work, "metrics.jsonl"))]
    train = [x for x in rows if "loss" in x]
    assert [x["step"] for x in train] == [1, 2]
    assert any("eval_drp_accuracy" in x for x in rows)
    assert sorted(os.listdir(os.path.join(work, "checkpoints"))) == ["1", "2"]
    cfg = json.load(open(os.path.join(work, "config.json")))
    assert cfg["model"]["vocab_size"] == 1000  # tiny takes the data's vocabulary


def test_config_errors_are_one_line(tmp_path):
    r = _main("--config", "tiny", "--workdir", str(tmp_path),
              "--config.data_dir=/nonexistent/tfrecords")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: data_dir '/nonexistent/tfrecords' does not exist or is not a "
                      "directory"]
