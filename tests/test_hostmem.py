"""Huge pages for host buffers: the tunable is added once, kept with others, opt-out works,
and an entry point really re-executes itself with it."""
import os
import subprocess
import sys

import pytest

from linkbert_jax.infra import hostmem

PROBE = ("import os, sys; from linkbert_jax.infra import hostmem; print('start', os.getpid()); "
         "hostmem.reexec_if_needed(); print('env', os.environ.get('GLIBC_TUNABLES'), "
         "os.getpid(), sys.argv[1:])")


def test_with_tunable_keeps_other_tunables_and_is_idempotent(monkeypatch):
    monkeypatch.setattr(hostmem, "supported", lambda: True)
    env = hostmem.with_tunable({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:" + hostmem.TUNABLE
    assert hostmem.with_tunable(env) == env
    assert hostmem.with_tunable({})["GLIBC_TUNABLES"] == hostmem.TUNABLE
    assert "GLIBC_TUNABLES" not in hostmem.with_tunable({hostmem.OPT_OUT: "0"})
    monkeypatch.setattr(hostmem, "supported", lambda: False)
    assert "GLIBC_TUNABLES" not in hostmem.with_tunable({})


@pytest.mark.skipif(not hostmem.supported(), reason="needs Linux, glibc >= 2.35 and THP")
def test_reexec_sets_the_tunable_once_and_keeps_argv():
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    run = subprocess.run([sys.executable, "-c", PROBE, "arg1", "--flag=2"], env=env,
                         capture_output=True, text=True, check=True)
    out = run.stdout.splitlines()
    starts = [line for line in out if line.startswith("start")]
    assert len(starts) == 2 and starts[0] == starts[1]  # exec: same process, once
    assert out[-1].startswith(f"env {hostmem.TUNABLE} ")
    assert out[-1].endswith("['arg1', '--flag=2']")
    assert run.stderr.count("re-executing with GLIBC_TUNABLES=") == 1  # said once, on stderr
    opted_out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                               env=dict(env, LINKBERT_HUGEPAGES="0"),
                               check=True).stdout.splitlines()
    assert len(opted_out) == 2 and opted_out[-1].startswith("env None ")
