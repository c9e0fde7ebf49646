"""Transparent huge pages for host memory: the step's temporary buffers on CPUs.

XLA:CPU allocates each execution's temporary buffer (about 1 GB for the small benchmark
model's train step) with ``malloc``; glibc serves anything that large with a fresh
``mmap`` and returns it with ``munmap`` when the step ends, so every step faults its
temporaries in again, 4 KiB at a time: 255,000 page faults and 0.45 s of kernel time per
step, during which both compute threads wait on the process's memory-map lock. glibc's
``glibc.malloc.hugetlb=1`` tunable makes ``malloc`` ask for transparent huge pages on
those mappings (2 MiB faults: 1,346 per step, measured). The gain per step is measured
once, in ``docs/performance.md`` ("Finding 1"). PyTorch's CPU allocator goes through the
same ``malloc``, so a benchmark process gives both sides the same help.

The tunable is read when a process starts, so entry points call :func:`reexec_if_needed`
(through ``linkbert_jax.infra.runtime.setup_environment``) before any work: it re-executes the same
command line once with the tunable added, and says so on stderr. ``LINKBERT_HUGEPAGES=0``
leaves the allocator alone (for A/B runs). Accelerator memory is not affected; on TPU/GPU
hosts it only changes how host buffers are paged.
"""
from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT = "LINKBERT_HUGEPAGES"
_THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def _glibc_version() -> tuple[int, int]:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # "glibc 2.36"
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else (0, 0)
    except (AttributeError, ValueError, OSError):
        return (0, 0)


def _thp_available() -> bool:
    try:
        with open(_THP) as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def active(env=None) -> bool:
    """Whether the tunable is set in ``env`` (default: this process's environment)."""
    env = os.environ if env is None else env
    return TUNABLE in env.get("GLIBC_TUNABLES", "").split(":")


def supported() -> bool:
    """Linux with glibc >= 2.35 (the tunable's first release) and THP not disabled."""
    return sys.platform.startswith("linux") and _glibc_version() >= (2, 35) and _thp_available()


def with_tunable(env=None) -> dict:
    """A copy of ``env`` with the tunable added (unchanged where unsupported/opted out)."""
    env = dict(os.environ if env is None else env)
    if env.get(OPT_OUT, "1") != "0" and supported() and not active(env):
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), TUNABLE]))
    return env


def reexec_if_needed() -> None:
    """Re-execute this very command line with the tunable set, once (no-op when it is
    already set, unsupported, or ``LINKBERT_HUGEPAGES=0``)."""
    env = with_tunable()
    if active(env) and not active():
        print(f"linkbert_jax: re-executing with GLIBC_TUNABLES={env['GLIBC_TUNABLES']} "
              f"(huge pages for host buffers; {OPT_OUT}=0 turns this off)",
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
