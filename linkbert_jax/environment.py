"""Process set-up that entry points call explicitly (importing a module of this package
changes nothing in the process: no environment variable, no re-execution, no device
visibility).

    from linkbert_jax import environment
    environment.setup()          # first thing in an entry point's ``__main__``

``setup`` (1) re-executes the process once with transparent huge pages for host memory
(:mod:`linkbert_jax.hostmem`, logged on stderr; ``LINKBERT_HUGEPAGES=0`` opts out),
(2) quiets TensorFlow's C++ start-up chatter and (3) hides accelerators from TensorFlow,
which is only the input library here and must never take GPU memory or TPU devices from
JAX (as big_vision and MaxText do). The input pipeline also calls (3) before it first
uses TensorFlow, for library users who call it without an entry point.
"""
from __future__ import annotations

import functools
import os

from linkbert_jax import hostmem


def quiet_tensorflow() -> None:
    """TF's C++ log level (read when TensorFlow loads: call before importing it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@functools.cache
def hide_accelerators_from_tensorflow() -> None:
    """No GPU/TPU for TensorFlow (once per process; a no-op once TF's runtime started)."""
    import tensorflow as tf
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except Exception:  # Runtime already initialised, or no such device type.
            pass


def setup(*, huge_pages: bool = True, tensorflow: bool = True) -> None:
    """The entry points' set-up; ``huge_pages`` may re-execute the process (once)."""
    if huge_pages:
        hostmem.reexec_if_needed()
    quiet_tensorflow()
    if tensorflow:
        hide_accelerators_from_tensorflow()
