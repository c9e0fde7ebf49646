"""Cost of checkpoint verification next to the restore it guards (issue 11, acceptance 4).

A training state of the config ``<arch>`` (params + AdamW moments, fp32, random values:
they compress like trained weights do, i.e. hardly) is saved once through
``checkpoints.save`` (which computes the checksums), then restored and verified in
alternating rounds: ``checkpoints.restore`` into the trainer's own sharded targets vs
``checkpoints.verify`` of both items (checksums + finiteness). The files are in the page
cache after the first round, so the restore timed is the fastest one there is and the
ratio is an upper bound for a restore from disk.

    python bench/checkpoint_verify.py [--arch base] [--rounds 5] [--quick]

Target: verify_s / restore_s < 0.10.
Last line: ``checkpoint_verify arch=.. state_mb=.. save_sums_s=.. restore_s=..
verify_s=.. ratio=..``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import common  # bench/common.py (this script's directory is first on sys.path)


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="base", help="a packaged config name")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dir", default=None, help="where to save (default: a temp dir)")
    p.add_argument("--quick", action="store_true", help="tiny arch, 1 round (smoke test)")
    return p.parse_args()


def random_state(arch: str):
    """(abstract TrainState, params, opt_state): random arrays with the trainer's shardings."""
    import jax
    import numpy as np
    from linkbert_jax.config_defaults import load_config_file
    from linkbert_jax.pretrain import recipe

    c = load_config_file(arch)
    built = recipe.build(c, {"vocab_size": c.model.vocab_size or 28996})
    abstract, state_sh = built.abstract_state, built.state_shardings
    rng = np.random.default_rng(0)

    def fill(a, s):
        x = (rng.standard_normal(a.shape, dtype=np.float32) * 0.02).astype(a.dtype) \
            if a.shape else np.zeros((), a.dtype)
        return jax.device_put(x, s)

    state = jax.tree_util.tree_map(fill, abstract, state_sh)
    return abstract, state.params, state.opt_state


def main() -> None:
    args = _args()
    import jax
    from linkbert_jax.checkpoint import checkpoints

    arch, rounds = ("tiny", 1) if args.quick else (args.arch, args.rounds)
    abstract, params, opt_state = random_state(arch)
    nbytes = sum(x.nbytes for x in jax.tree_util.tree_leaves((params, opt_state)))
    workdir = args.dir or tempfile.mkdtemp(prefix="ckpt_verify_")
    try:
        mgr = checkpoints.manager(workdir, async_save=False, max_to_keep=None)
        t0 = time.perf_counter()
        checkpoints.item_checksums("params", params, 1)
        checkpoints.item_checksums("opt_state", opt_state, 1)
        save_sums = time.perf_counter() - t0
        checkpoints.save(mgr, 1, params, opt_state, {"step": 1})
        mgr.wait_until_finished()
        del params, opt_state
        restored = {}

        def restore():
            restored["x"] = jax.block_until_ready(
                checkpoints.restore(mgr, 1, abstract.params, abstract.opt_state))

        def verify():
            p, o, meta = restored["x"]
            assert checkpoints.verify(meta, "params", p)
            assert checkpoints.verify(meta, "opt_state", o)

        restore()
        times = {"restore": [], "verify": []}
        for _ in range(rounds):
            for name, fn in (("restore", restore), ("verify", verify)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        mgr.close()
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    for k, v in times.items():
        print(f"{k}: median {med[k]:.3f}s, range {min(v):.3f}-{max(v):.3f}s over {len(v)}")
    ratios = [v / r for v, r in zip(times["verify"], times["restore"])]
    print(f"verify/restore per round: {min(ratios):.3f}-{max(ratios):.3f}")
    print(f"state {nbytes / 2**20:.0f} MiB on {jax.device_count()} {jax.devices()[0].platform} "
          f"device(s); load average {os.getloadavg()[0]:.2f}")
    common.summary("checkpoint_verify", arch=arch, state_mb=round(nbytes / 2**20),
                   save_sums_s=save_sums, restore_s=med["restore"], verify_s=med["verify"],
                   ratio=med["verify"] / med["restore"])


if __name__ == "__main__":
    common.setup()  # huge pages, as the trainer runs (re-executes once)
    main()
