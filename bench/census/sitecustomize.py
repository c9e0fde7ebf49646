"""Compile census logger (``bench/compile_census.py`` puts this directory on PYTHONPATH).

In every Python process of the measured command, once JAX is imported, each XLA backend
compile appends one line to ``$COMPILE_CENSUS_DIR/<pid>.tsv``: the test that ran it
(``PYTEST_CURRENT_TEST``, inherited by the tests' subprocesses) or the command line,
the jitted function's name, the seconds, 1 if the persistent compilation cache served it,
and the cache key (the same key: the same program). Nothing is imported before the
process imports JAX itself, and no behaviour changes: listeners only.
"""
import builtins
import os
import sys
import threading

_original_import = builtins.__import__
_state = threading.local()


def _who() -> str:
    test = os.environ.get("PYTEST_CURRENT_TEST")
    return (test.split(" (")[0] if test else " ".join(sys.argv[:3]))[:200].replace("\t", " ")


def _install() -> None:
    from jax._src import cache_key, monitoring

    path = os.path.join(os.environ["COMPILE_CENSUS_DIR"], f"{os.getpid()}.tsv")
    get = cache_key.get

    def keyed(*args, **kwargs):
        key = get(*args, **kwargs)
        _state.key, _state.hit = key, False
        return key

    def on_event(event, **_):
        if event == "/jax/compilation_cache/cache_hits":
            _state.hit = True

    def on_duration(event, seconds, **kwargs):
        if event != "/jax/core/compile/backend_compile_duration":
            return
        row = (_who(), kwargs.get("fun_name", "?"), f"{seconds:.3f}",
               str(int(getattr(_state, "hit", False))), getattr(_state, "key", "-"))
        with open(path, "a") as f:
            f.write("\t".join(row) + "\n")
        _state.key, _state.hit = "-", False

    cache_key.get = keyed
    monitoring.register_event_listener(on_event)
    monitoring.register_event_duration_secs_listener(on_duration)


def _import(name, *args, **kwargs):
    module = _original_import(name, *args, **kwargs)
    spec = getattr(sys.modules.get("jax"), "__spec__", None)
    if name.startswith("jax") and spec is not None and not getattr(spec, "_initializing", 0):
        builtins.__import__ = _original_import  # JAX is fully imported: once is enough
        _install()
    return module


if os.environ.get("COMPILE_CENSUS_DIR"):
    builtins.__import__ = _import
