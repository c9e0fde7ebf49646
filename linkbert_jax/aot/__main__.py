r"""Compile a config's train and eval steps ahead of time for a TPU slice (or this host)
and say whether they fit, what they cost and what to change::

    python -m linkbert_jax.aot --config configs/base.py --topology v4-64 \
        [--config.microbatches=2 ...] [--suggest] [--json out.json]

Exit status: 0 when the train and eval steps fit the target's memory, 1 when they do not
(the report lists what to try; ``--suggest`` compiles those options until one fits with
10% headroom), 2 for a bad config or topology (one line). Details: docs/aot.md.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.",
                                          lock_config=False)
_TOPOLOGY = flags.DEFINE_string(
    "topology", None, "v4-64, v5p-128, v5litepod-64, v6e-64, a chip grid such as v4:2x4x4 "
    "or v5e:8x8, or cpu / cpu:N (this host).")
_SUGGEST = flags.DEFINE_bool("suggest", False, "When it does not fit, compile the options "
                             "in order of cost and report the first that fits.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
flags.mark_flags_as_required(["config", "topology"])


def run(config, topology_name: str, *, suggest: bool = False,
        json_path: str | None = None) -> int:
    """The whole command as a function (tests call it in-process)."""
    from linkbert_jax.aot import analysis, report, search, topology
    target = topology.parse(topology_name)
    devices = topology.devices(target)
    if target.platform == "cpu":
        target = dataclasses.replace(target, num_devices=len(devices))
    config, notes = analysis.prepared(config)
    usable = analysis.usable_bytes(target, devices)
    chip = target.chip
    print(f"{config.arch} on {target.label}: {chip.name if chip else 'host CPU'}, "
          f"{usable / 2 ** 30:.2f} GiB available per device", flush=True)
    for note in notes:
        print(f"note: {note}")
    r = analysis.analyze(config, target, devices, usable)
    for line in report.lines(r, chip, int(config.num_train_steps)):
        print(line)
    record = {"config": config.arch, "result": r.to_dict(),
              "roofline": report.roofline(r, chip, int(config.num_train_steps))}
    if not r.fits:
        print(f"DOES NOT FIT {target.name}; try, in order:")
        for s in report.suggestions(r, topology.larger(target)):
            print(f"  {s}")
        if suggest:
            record["suggestion"] = _suggest(config, target, devices, usable, chip)
    elif r.headroom < report.HEADROOM:
        print(f"fits, with less than {report.HEADROOM:.0%} headroom")
    if json_path:
        _write_json(json_path, record)
    rf = record["roofline"]
    print(f"aot config={config.arch} topology={target.name} fits={int(r.fits)} "
          f"headroom={r.headroom:.3f} flop_ratio={r.traced_flops / r.analytic_flops:.3f} "
          f"step_s={rf.get('step_s', float('nan')):.4f} "
          f"mfu_bound={rf.get('mfu_bound', float('nan')):.3f}")
    return 0 if r.fits else 1


def _suggest(config, target, devices, usable, chip) -> dict | None:
    from linkbert_jax.aot import analysis, report, search
    found = search.search(
        config, len(devices), lambda c: analysis.analyze(c, target, devices, usable),
        lambda r: r.fits and r.headroom >= report.HEADROOM)
    if found is None:
        print("no setting tried fits this slice with "
              f"{report.HEADROOM:.0%} headroom: use a larger slice")
        return None
    over, r = found
    print(f"fits with: {search.flags(over)}")
    for line in report.lines(r, chip, int(config.num_train_steps)):
        print(f"  {line}")
    return {"overrides": over, "result": r.to_dict(),
            "roofline": report.roofline(r, chip, int(config.num_train_steps))}


def _write_json(path: str, record: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, default=float)
    os.replace(tmp, path)


def main(argv=None) -> None:
    if argv is not None and len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from linkbert_jax.errors import ConfigError
    logging.getLogger("absl").setLevel(logging.WARNING)
    logger = logging.getLogger("linkbert_jax")
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        code = run(_CONFIG.value, _TOPOLOGY.value, suggest=_SUGGEST.value,
                   json_path=_JSON.value)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)


def console() -> None:
    """Console-script entry point (``linkbert-aot``)."""
    app.run(main)


if __name__ == "__main__":
    app.run(main)
