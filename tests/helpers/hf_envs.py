"""Virtual environments with old ``transformers``, built once and cached, for the tests that
load an export as LinkBERT users do (tests/test_hf_compat.py).

Each environment installs the exact pins of ``tests/hf_compat/transformers-<version>.txt``
(with ``common.txt``) with ``--no-deps``: nothing is resolved, and torch is the CPU build
on the machine's disk. Both environments build at the same time. They are cached in
``$LINKBERT_HF_ENVS`` (default ``~/.cache/linkbert-jax/hf-envs``) under a name that
includes a hash of the pins and of this Python's version, and a stamp written last marks
an environment complete: an interrupted build is started again.

    python -m helpers.hf_envs 4.16.2 4.25.1     # build them ahead (cwd: tests/)
"""
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time

from helpers import TESTS

PINS = os.path.join(TESTS, "hf_compat")
VERSIONS = ("4.16.2", "4.25.1")
STAMP = ".complete"


def cache_root() -> str:
    return os.environ.get("LINKBERT_HF_ENVS") or os.path.join(
        os.path.expanduser("~"), ".cache", "linkbert-jax", "hf-envs")


def pins_file(version: str) -> str:
    return os.path.join(PINS, f"transformers-{version}.txt")


def env_dir(version: str) -> str:
    h = hashlib.sha256(sys.version.encode())
    for name in (pins_file(version), os.path.join(PINS, "common.txt")):
        with open(name, "rb") as f:
            h.update(f.read())
    return os.path.join(cache_root(), f"transformers-{version}-{h.hexdigest()[:12]}")


def python(version: str) -> str:
    return os.path.join(env_dir(version), "bin", "python")


def _start(version: str) -> subprocess.Popen:
    path = env_dir(version)
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True)
    log = open(os.path.join(path, "install.log"), "w")
    return subprocess.Popen(
        [sys.executable, "-m", "pip", "--python", python(version), "install", "-q",
         "--no-deps", "--no-compile", "--disable-pip-version-check", "-r",
         pins_file(version)], stdout=log, stderr=subprocess.STDOUT)


def ensure(versions=VERSIONS) -> dict:
    """``{version: python executable}``, building the environments that are missing."""
    os.makedirs(cache_root(), exist_ok=True)
    with open(os.path.join(cache_root(), ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        todo = [v for v in versions if not os.path.exists(os.path.join(env_dir(v), STAMP))]
        t0 = time.time()
        procs = {v: _start(v) for v in todo}
        for v, p in procs.items():
            if p.wait() != 0:
                with open(os.path.join(env_dir(v), "install.log")) as f:
                    tail = f.read()[-2000:]
                raise RuntimeError(f"building the transformers {v} environment failed:\n{tail}")
            with open(os.path.join(env_dir(v), STAMP), "w") as f:
                f.write(f"built in {time.time() - t0:.0f} s\n")
        if todo:
            print(f"built transformers {', '.join(todo)} environments in "
                  f"{time.time() - t0:.0f} s under {cache_root()}")
    return {v: python(v) for v in versions}


if __name__ == "__main__":
    print(ensure(tuple(sys.argv[1:]) or VERSIONS))
