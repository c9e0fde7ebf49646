"""The ``python -m linkbert_jax.aot`` command as functions (no flags: tests call ``run``)."""
from __future__ import annotations

import dataclasses

from linkbert_jax.aot import analysis, report, search, topology
from linkbert_jax.data import files
from linkbert_jax.errors import ConfigError


def run(config, topology_name: str, *, suggest: bool = False,
        json_path: str | None = None) -> int:
    """The whole command as a function (tests call it in-process)."""
    target = topology.parse(topology_name)
    devices = topology.devices(target)
    if target.platform == "cpu" and len(devices) != target.num_devices:
        if target.num_devices:
            raise ConfigError(f"{target.name} needs {target.num_devices} host devices but "
                              f"this process has {len(devices)} (JAX started already)")
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
    steps = int(config.num_train_steps)
    record = {"config": config.arch, "result": r.to_dict(),
              "roofline": report.roofline(r, chip, steps),
              "estimate": report.estimated(r, chip, steps)}
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
    print(_last_line(config.arch, target.name, r, record))
    return 0 if r.fits else 1


def _last_line(arch: str, target: str, r, record: dict) -> str:
    rf, e = record["roofline"], record["estimate"]
    nan = float("nan")
    fields = {"step_s": rf.get("step_s", nan), "mfu_bound": rf.get("mfu_bound", nan),
              "est_step_s": e.get("step_s", nan), "est_mfu": e.get("mfu", nan),
              "est_days": e.get("train_days", nan), "compute_s": e.get("compute_s", nan),
              "memory_matmul_s": e.get("memory_matmul_s", nan),
              "memory_other_s": e.get("memory_other_s", nan),
              "collective_s": nan if e.get("collective_s") is None else e["collective_s"]}
    return (f"aot config={arch} topology={target} fits={int(r.fits)} "
            f"headroom={r.headroom:.3f} flop_ratio={r.traced_flops / r.analytic_flops:.3f} "
            + " ".join(f"{k}={v:.4f}" for k, v in fields.items()))


def _suggest(config, target, devices, usable, chip) -> dict | None:
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
    steps = int(config.num_train_steps)
    return {"overrides": over, "result": r.to_dict(),
            "roofline": report.roofline(r, chip, steps),
            "estimate": report.estimated(r, chip, steps)}


def _write_json(path: str, record: dict) -> None:
    files.write_json(path, record, indent=1, default=float)
