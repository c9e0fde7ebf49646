"""Every module of the package, the commands' ``__main__`` modules included, imports in
one process, with no side effects: no error (two commands' absl ``--config`` flags are
defined when each command starts, not at import), no environment variable changes, no
process is started or re-executed, TensorFlow's devices are left alone; the same holds for
the benchmarks' shared module (bench/common.py). Entry points do their set-up explicitly
(linkbert_jax.infra.runtime.setup_environment)."""
import json
import os
import subprocess
import sys

from helpers import REPO

PROBE = r"""
import importlib, importlib.util, json, os, pkgutil, subprocess, sys
import tensorflow as tf

calls = []

def refuse(name):
    def call(*args, **kwargs):
        calls.append(name)
        raise RuntimeError(f"{name} called while importing")
    return call

for name in ("execv", "execve", "execvp", "execvpe", "fork", "forkpty", "posix_spawn",
             "posix_spawnp", "system", "spawnv", "spawnve", "popen"):
    if hasattr(os, name):
        setattr(os, name, refuse("os." + name))
subprocess.Popen.__init__ = refuse("subprocess.Popen")
tf.config.set_visible_devices = refuse("tf.config.set_visible_devices")

import linkbert_jax
before = dict(os.environ)
names = sorted(m.name for m in pkgutil.walk_packages(linkbert_jax.__path__, "linkbert_jax."))
for name in names:
    importlib.import_module(name)
spec = importlib.util.spec_from_file_location("bench_common", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print("RESULT " + json.dumps({"modules": names, "calls": calls, "changed": changed}))
"""


def test_every_module_imports_in_one_process_and_changes_nothing():
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "TF_CPP_MIN_LOG_LEVEL")}
    r = subprocess.run([sys.executable, "-c", PROBE, f"{REPO}/bench/common.py"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert {"linkbert_jax.main", "linkbert_jax.finetune.__main__", "linkbert_jax.aot.__main__",
            "linkbert_jax.ablate.__main__", "linkbert_jax.pretrain.input_pipeline",
            "linkbert_jax.pretrain.trainer", "linkbert_jax.data.build", "linkbert_jax.demo"
            } <= set(result["modules"])
    assert result["calls"] == []
    assert result["changed"] == []
