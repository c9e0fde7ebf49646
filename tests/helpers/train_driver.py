"""Subprocess entry for the training tests: a config file + overrides + synthetic data.

    cd tests && python -m helpers.train_driver SPEC_JSON     (helpers.training.driver)

SPEC: {"config": "cpu_small" (a packaged name or a path), "workdir": DIR, "overrides": {"a.b": value},
       "source": {SyntheticSource kwargs} | "tfrecord" (config.data_dir), "distributed":
       {coordinator, num_processes, process_id}, "mode": "train" | "meshes",
       "take_over_lock": bool,
       "meshes": [{"mesh": {data, fsdp, tensor}, "overrides": {...}}, ...]}
"""
from __future__ import annotations

import json
import os
import sys

from helpers.synthetic import SyntheticSource
from linkbert_jax.config_defaults import load_config_file


def run_meshes(spec: dict) -> None:
    """Train the same steps under several meshes; print losses and parameter specs."""
    import jax
    from linkbert_jax import sharding
    from linkbert_jax.pretrain import trainer
    from linkbert_jax.errors import ConfigError
    results = []
    for i, case in enumerate(spec["meshes"]):
        mesh = case["mesh"]
        config = load_config_file(spec["config"], {**spec.get("overrides", {}),
                                              **case.get("overrides", {}),
                                              **{f"mesh.{k}": v for k, v in mesh.items()}})
        workdir = os.path.join(spec["workdir"], f"mesh{i}")
        try:
            state = trainer.train_and_evaluate(config, workdir, SyntheticSource(
                **spec.get("source", {})))
        except ConfigError as e:
            results.append({"mesh": mesh, "error": str(e)})
            continue
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            losses = [r["loss"] for r in map(json.loads, f) if "loss" in r]
        results.append({"mesh": mesh, "losses": losses,
                        "specs": sharding.describe(state.params),
                        "devices": len(jax.devices())})
    print("RESULT " + json.dumps(results))


def main() -> int:
    spec = json.loads(sys.argv[1])
    if spec.get("mode") == "meshes":
        run_meshes(spec)
        return 0
    from linkbert_jax import main as entry
    config = load_config_file(spec["config"], spec.get("overrides", {}))
    dist = spec.get("distributed", {})
    source = spec.get("source", {})
    source = None if source == "tfrecord" else SyntheticSource(**source)
    return entry.run(config, spec["workdir"], source,
                     coordinator=dist.get("coordinator"),
                     num_processes=dist.get("num_processes"),
                     process_id=dist.get("process_id"),
                     take_over_lock=spec.get("take_over_lock", False))


if __name__ == "__main__":
    sys.exit(main())
