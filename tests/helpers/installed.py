"""This checkout installed as a package in a fresh virtual environment: ``pip install
--no-deps .`` (not editable) of a copy of the tracked files, so tests run the user
commands as a user has them, from a directory outside the checkout.

The fresh venv reuses the test venv's dependencies through a ``.pth`` file: this checks
what the package itself ships (modules, configs, console scripts), not dependency
resolution (``make install`` checks that).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig

from helpers import REPO


def _copy_tracked(dst: str) -> None:
    """The checkout's tracked (and new, not ignored) files: the build writes only there."""
    names = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = os.path.join(REPO, name)
        if os.path.isfile(src):
            os.makedirs(os.path.join(dst, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(src, os.path.join(dst, name))


def install(root: str) -> str:
    """A venv under ``root`` with the package installed; returns its ``python``."""
    src, venv = os.path.join(root, "src"), os.path.join(root, "venv")
    _copy_tracked(src)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = os.path.join(venv, "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    with open(os.path.join(site.stdout.strip(), "test_venv_deps.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    # The test venv's setuptools builds it when it has one (Python < 3.12 venvs do);
    # else pip fetches the build backend from the package index.
    offline = ["--no-build-isolation", "--no-index"] if importlib.util.find_spec(
        "setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
                    "--no-deps", *offline, src], check=True, capture_output=True)
    where = subprocess.run([python, "-c", "import linkbert_jax; print(linkbert_jax.__file__)"],
                           cwd=root, env=env(python), check=True, capture_output=True,
                           text=True).stdout
    assert where.startswith(venv), f"linkbert_jax comes from {where}, not the fresh venv"
    return python


def env(python: str, **extra) -> dict:
    """The environment of a user of that venv: its bin/ first on PATH, no PYTHONPATH."""
    out = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out["PATH"] = os.pathsep.join([os.path.dirname(python), out.get("PATH", "")])
    out.update(extra)
    return out
