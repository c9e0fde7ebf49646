"""Configs and subprocess runs shared by the training tests."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from helpers import TESTS
from linkbert_jax import config_defaults

# cpu_small (tiny architecture, real 28,996 vocabulary), a few short steps.
OVERRIDES = {"model.vocab_size": 28996, "num_train_steps": 3, "global_batch_size": 16,
             "seq_length": 32, "masking.max_predictions": 5, "log_every_steps": 1,
             "checkpoint_every_steps": 1000, "eval_at_end": False,
             "async_checkpointing": False}
SOURCE = {"vocab_size": 28996, "max_seq_length": 32}
# small_config's model as overrides (a run of a packaged config file: a subprocess's, or
# through load_config_file); small_config applies them itself.
SMALL_MODEL = {"model.hidden_size": 32, "model.num_hidden_layers": 1,
               "model.num_attention_heads": 2, "model.intermediate_size": 64,
               "model.vocab_size": 2048}
# Two steps of a packaged config with SMALL_MODEL's sizes at the data's vocabulary (fp32,
# sequences of 64): the tests that train on a real build.
TWO_STEPS = {**{k: v for k, v in SMALL_MODEL.items() if k != "model.vocab_size"},
             "model.dtype": "float32", "seq_length": 64, "global_batch_size": 8,
             "num_train_steps": 2, "warmup_steps": 1, "masking.max_predictions": 10,
             "checkpoint_every_steps": 2, "log_every_steps": 1, "eval_every_steps": 0,
             "eval_at_end": False, "async_checkpointing": False}


def config_path(name: str) -> str:
    """The path of the packaged config ``name`` (``linkbert_jax/configs/<name>.py``)."""
    return config_defaults.config_file(name)


def load(name: str):
    return config_defaults.load_config_file(config_path(name))


def small_config(**kw):
    c = load("cpu_small")
    c.model.update(**{k.removeprefix("model."): v for k, v in SMALL_MODEL.items()})
    c.update(seq_length=32, global_batch_size=8, num_train_steps=4, log_every_steps=1)
    c.masking.max_predictions = 6
    c.update(kw)
    return c


def driver(spec: dict, devices: int, **popen) -> subprocess.Popen:
    """``helpers.train_driver`` in a subprocess with ``devices`` CPU devices."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.Popen([sys.executable, "-m", "helpers.train_driver", json.dumps(spec)],
                            env=env, cwd=TESTS, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def result_of(proc, timeout=400):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def metric_rows(workdir) -> list[dict]:
    """The rows of a workdir's ``metrics.jsonl`` so far ([] before the first)."""
    path = os.path.join(workdir, "metrics.jsonl")
    return [json.loads(x) for x in open(path)] if os.path.exists(path) else []


def wait_for(cond, proc, timeout=300):
    """Polls ``cond()`` while ``proc`` runs; fails if it exits first or on timeout."""
    t0 = time.time()
    while not cond():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]
