"""Process set-up shared by the entry points (pretraining, fine-tuning, benchmarks): the
process environment (huge pages, TensorFlow kept off accelerators), logging and
multi-host initialisation. Nothing here runs at import: importing any module of the
package changes no environment variable and starts no process (tests/test_imports.py);
entry points call ``setup_environment()`` first thing.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import sys

from linkbert_jax.infra import hostmem


def define_distributed_flags():
    """The absl flags of a multi-host launch, for an entry point to define once:
    ``(coordinator_address, num_processes, process_id)`` flag holders."""
    from absl import flags
    return (flags.DEFINE_string("coordinator_address", None,
                                "host:port of process 0 (multi-process without a cluster "
                                "environment JAX detects)"),
            flags.DEFINE_integer("num_processes", None, "Number of processes."),
            flags.DEFINE_integer("process_id", None, "This process's index."))


def define_take_over_lock_flag():
    """``--take_over_lock`` (:mod:`linkbert_jax.infra.workdir_lock`), for an entry point that
    holds a workdir's lock."""
    from absl import flags
    return flags.DEFINE_bool(
        "take_over_lock", False, "Take the workdir's lock (writer.lock) even if its holder "
        "may still run (one on another host cannot be checked; a dead pid here is taken "
        "over anyway).")


def init_distributed(coordinator: str | None, num_processes: int | None,
                     process_id: int | None) -> None:
    """Explicit flags, else auto-detection on TPU pods / GPU clusters, else one process."""
    import jax
    if coordinator:
        jax.distributed.initialize(coordinator_address=coordinator,
                                   num_processes=num_processes, process_id=process_id)
        return
    try:
        jax.distributed.initialize()
    except (ValueError, RuntimeError):  # no cluster environment: a single process
        pass


class _StderrHandler(logging.StreamHandler):
    """A stream handler on the ``sys.stderr`` of the moment, not the one at set-up (an
    in-process caller, such as a test capturing output, may swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def setup_logging(*quiet: str) -> None:
    """Our progress lines on stderr; absl/XLA chatter (and the ``quiet`` loggers) only at
    WARNING and above."""
    logger = logging.getLogger("linkbert_jax")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
    for name in ("absl", "jax._src.xla_bridge") + quiet:  # xla_bridge: "no TPU backend"
        logging.getLogger(name).setLevel(logging.WARNING)


def _config_keys(argv: list[str], path: str) -> str:
    """The keys at ``path`` (``config.mesh``) of the ``--config`` file, for a message."""
    from linkbert_jax.config_defaults import load_config_file
    try:
        i = next(i for i, a in enumerate(argv) if a.split("=")[0] == "--config")
        node = load_config_file(argv[i].split("=", 1)[1] if "=" in argv[i] else argv[i + 1])
        for part in path.split(".")[1:]:
            node = node[part]
        return f"; keys of {path}: {', '.join(sorted(node.keys()))}"
    except Exception:  # noqa: BLE001  no config file, or not a ConfigDict there
        return ""


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing for ``app.run(main, flags_parser=runtime.parse_flags)``: a bad
    flag, an unknown ``--config.KEY`` or a value of the wrong type is a ``ConfigError``
    that names it (one ``error:`` line and exit status 2 through ``run_absl``; absl: a
    traceback or two lines, status 1)."""
    from absl import flags

    from linkbert_jax.errors import ConfigError
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError) as e:
        text = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
        if "Traceback (most recent call last)" in text:  # a config file's get_config raised
            text = f"{text.split(': ', 1)[0]}: {text.strip().splitlines()[-1]}"
        name = getattr(e, "flagname", None) or re.sub(r"^\W*([\w.]+).*", r"\1", text,
                                                       flags=re.S)
        arg = next((a.split("=")[0] for a in argv[1:] if a.startswith("--config.") and (
            a.split("=")[0] == f"--{name}" or a.split("=")[0].endswith(f".{name}"))), None)
        if arg and not isinstance(e, flags.IllegalFlagValueError):
            hint = re.search(r"Did you mean [^'\n]*", text)
            path = arg[2:].rsplit(".", 1)[0]
            msg = (f"{arg}: the config has no such key{_config_keys(argv, path)}"
                   + (f" ({hint.group(0)})" if hint else ""))
        else:
            msg = " ".join(text.split())
    raise ConfigError(msg) from None


def run_absl(main, argv: list[str]):
    """``app.run(main, argv)`` with :func:`parse_flags`, through ``errors.run_cli``: the
    absl commands' start (their flags defined first); exits. Arguments left after the
    flags are refused (absl's usage error) before ``main`` runs."""
    from absl import app

    from linkbert_jax import errors

    def flags_only(args):
        if len(args) > 1:
            raise app.UsageError(f"unexpected arguments: {args[1:]}")
        return main(args)
    sys.exit(errors.run_cli(lambda: app.run(flags_only, argv=argv, flags_parser=parse_flags)))


def quiet_tensorflow() -> None:
    """What TensorFlow reads when it loads (call before importing it): its C++ log level,
    and ``TF_USE_LEGACY_KERAS=1``. TensorFlow imports Keras 3's optimizers eagerly, about
    a third of ``import tensorflow`` (6.4-7.2 s -> 4.1-4.5 s wall without it,
    docs/performance.md); with the variable set it imports ``tf_keras`` instead, which
    our install does not have, and goes on. We use ``tf.data`` and ``tf.io``, never
    ``tf.keras``. A value set outside wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@functools.cache
def hide_accelerators_from_tensorflow() -> None:
    """No GPU/TPU for TensorFlow (once per process; a no-op once TF's runtime started)."""
    import tensorflow as tf
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except Exception:  # Runtime already initialised, or no such device type.
            pass


def setup_environment(*, huge_pages: bool = True, tensorflow: bool = True) -> None:
    """The entry points' process set-up, called first thing (``huge_pages`` may re-execute
    the process, once, and says so): transparent huge pages for host memory
    (``linkbert_jax.infra.hostmem``; ``LINKBERT_HUGEPAGES=0`` opts out), TensorFlow's C++
    chatter quieted, and accelerators hidden from TensorFlow, which is only the input
    library and must never take GPU memory or TPU devices from JAX (the input pipeline
    also hides them before it first uses TensorFlow)."""
    if huge_pages:
        hostmem.reexec_if_needed()
    quiet_tensorflow()
    if tensorflow:
        hide_accelerators_from_tensorflow()
