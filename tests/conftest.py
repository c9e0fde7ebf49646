import os
import shutil
import tempfile

import pytest

from helpers import installed
from linkbert_jax.infra import hostmem


def pytest_configure(config):
    """One JAX compilation cache per test run, shared with the subprocesses the tests start
    (the environment is inherited): the many trainer runs compile the same small steps.
    The cache starts empty each run and is removed at the end, so no run depends on an
    earlier one. Every compile is kept, not only those over JAX's default 1 s: the
    subprocesses compile the same sub-second programs (parameter init, restore, eval) again
    and again. ``JAX_COMPILATION_CACHE_DIR`` set outside keeps the caller's cache as it is."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        path = tempfile.mkdtemp(prefix="linkbert-jax-test-cache-")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = path
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        config._linkbert_cache = path
    # The subprocesses start with the huge-pages tunable, as the entry points would set it,
    # so they do not re-execute themselves (tests of the re-execution remove it).
    os.environ.update(hostmem.with_tunable())


def pytest_collection_modifyitems(config, items):
    """The files that hold a ``slow`` test run first, the rest keep their order: with
    ``--dist loadfile`` (``make test``) and ``--no-loadscope-reorder`` (pytest.ini) each
    file goes to the next free worker, so the long files are spread over the workers and
    the short ones fill the end (xdist's own order, by number of tests, left the long
    single-test files for last, where one worker ran them while the other waited)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_unconfigure(config):
    path = getattr(config, "_linkbert_cache", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def installed_python(tmp_path_factory) -> str:
    """``python`` of a fresh venv with this checkout installed as a package (not editable);
    see helpers/installed.py."""
    return installed.install(str(tmp_path_factory.mktemp("installed")))
