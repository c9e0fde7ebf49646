import os
import shutil
import tempfile

import pytest

from helpers import installed


def pytest_configure(config):
    """One JAX compilation cache per test run, shared with the subprocesses the tests start
    (the environment is inherited): the many trainer runs compile the same small steps.
    The cache starts empty each run and is removed at the end, so no run depends on an
    earlier one. ``JAX_COMPILATION_CACHE_DIR`` set outside keeps the caller's cache."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        path = tempfile.mkdtemp(prefix="linkbert-jax-test-cache-")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = path
        config._linkbert_cache = path


def pytest_unconfigure(config):
    path = getattr(config, "_linkbert_cache", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def installed_python(tmp_path_factory) -> str:
    """``python`` of a fresh venv with this checkout installed as a package (not editable);
    see helpers/installed.py."""
    return installed.install(str(tmp_path_factory.mktemp("installed")))
