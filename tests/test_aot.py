"""Ahead-of-time compile (``python -m linkbert_jax.aot``) for a small TPU slice and the
CPU host: the figures it reports are the compiler's and the trainer's own."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from linkbert_jax.infra import step_costs
from linkbert_jax.pretrain import recipe
from linkbert_jax.aot import analysis, command, topology
from linkbert_jax.config_defaults import load_config_file
from linkbert_jax.errors import ConfigError

SLICE = "v4:2x2x1"  # one v4 host: 4 chips
# Small shapes keep the TPU compile short; dropout off so the step is pure matmuls and
# the elementwise ops the analytic count leaves out.
TINY = {"global_batch_size": 16, "seq_length": 64, "eval_batch_size": 4,
        "masking.max_predictions": 10, "model.scan_layers": False}


def _config(name: str, overrides: dict):
    return load_config_file(name, overrides)


@pytest.mark.parametrize("name, grid, chips", [
    ("v4-8", "v4:2x2x1", 4), ("v4-32", "v4:2x2x4", 16), ("v4-64", "v4:2x4x4", 32),
    ("v4-128", "v4:4x4x4", 64), ("v5p-128", "v5:4x4x4", 64), ("v5litepod-64", "v5e:8x8", 64),
    ("v5e-256", "v5e:16x16", 256), ("v6e-64", "v6e:8x8", 64), ("v5p:2x2x4", "v5:2x2x4", 16),
    ("h100:8", "", 8), ("cpu:4", "", 4)])
def test_topology_names(name, grid, chips):
    t = topology.parse(name)
    assert (t.grid, t.num_devices) == (grid, chips)


@pytest.mark.parametrize("name", ["v9-64", "v4-48", "v5e:8x8x2", "tpu", "v4_64"])
def test_bad_topology_names_name_the_valid_forms(name):
    with pytest.raises(ConfigError, match="valid forms: an accelerator type"):
        topology.parse(name)


def test_fsdp_shards_the_state_and_data_parallel_replicates_it():
    """Parameter + optimizer bytes per device, as the report computes them."""
    target = topology.parse(SLICE)
    devices = topology.devices(target)
    per_device = {}
    for mesh in ({"mesh.data": 1, "mesh.fsdp": -1}, {"mesh.data": -1, "mesh.fsdp": 1}):
        config, _ = analysis.prepared(_config("tiny", dict(TINY, **mesh)))
        mesh_ = analysis.mesh_for(config, target, devices)
        abstract = recipe.build(config, mesh=mesh_).abstract_state
        b = step_costs.state_bytes(abstract)
        device = b["params"]["device"] + b["opt_state"]["device"]
        per_device[mesh["mesh.data"]] = (device, b["params"]["total"] + b["opt_state"]["total"])
    device, total = per_device[1]
    assert abs(device - total / 4) <= 0.1 * total / 4, per_device
    device, total = per_device[-1]
    assert device == total


def test_tiny_step_on_a_tpu_slice(tmp_path, capsys):
    """One compile: fsdp state per device ~ total/4 in the compiler's own argument bytes,
    the donated state aliased, matmul FLOPs within 5% of the analytic count."""
    config = _config("tiny", dict(TINY, **{"mesh.data": 1, "mesh.fsdp": -1,
                                           "model.hidden_dropout_prob": 0.0,
                                           "model.attention_probs_dropout_prob": 0.0}))
    out = tmp_path / "tiny.json"
    assert command.run(config, SLICE, json_path=str(out)) == 0
    text = capsys.readouterr().out
    assert "donated state aliased" in text and "(yes)" in text, text
    r = json.loads(out.read_text())["result"]
    state = r["state"]["params"]["device"] + r["state"]["opt_state"]["device"]
    total = r["state"]["params"]["total"] + r["state"]["opt_state"]["total"]
    assert abs(state - total / 4) <= 0.1 * total / 4
    m = r["memory"]
    assert state <= m["arguments"] <= state + 2 ** 20  # + the batch shard and the key
    assert m["aliased"] >= state
    assert r["fits"] and r["headroom"] > 0.9
    assert abs(r["traced_flops"] / r["analytic_flops"] - 1) < 0.05
    # The traced count is the compiler's: XLA's own (loop-free step) adds elementwise ops.
    xla_total = r["xla"]["flops"] * r["devices"]
    assert 1.0 <= xla_total / r["traced_flops"] < 1.1
    # The estimate (tests/test_aot_estimate.py checks its parts by hand): fsdp gathers
    # and scatters on the ICI, so every term is there, in the report and its last line.
    est = json.loads(out.read_text())["estimate"]
    assert est["step_s"] >= est["compute_s"] + est["collective_s"] > est["compute_s"] > 0
    assert "estimated step:" in text and " est_step_s=" in text.splitlines()[-1]


@pytest.mark.parametrize("arm, head", [("nsp", (128, 2)), ("no_drp", None)])
def test_ablation_arms_compile_on_a_tpu_slice(arm, head, capsys):
    """The arms whose step is not their seed config's (configs/ablations.py; the data arms
    compile tiny's own step), at small shapes on one v4 host: the relation head is the
    objective's (none for MLM only) and the step fits. Paper scale on each arm's slice:
    ``tools/aot_table.py --ablations``."""
    config = _config(f"ablations:{arm}", dict(TINY, **{"model.scan_layers": True}))
    config, _ = analysis.prepared(config)
    params = recipe.build(config, mesh=analysis.mesh_for(
        config, topology.parse(SLICE), topology.devices(topology.parse(SLICE)))
                          ).abstract_state.params
    assert (params["drp"]["kernel"].shape if "drp" in params else None) == head
    assert command.run(config, SLICE) == 0
    assert "fits=1" in capsys.readouterr().out


def test_oversized_batch_does_not_fit_and_says_what_to_try(capsys):
    """BERT-base at the paper's 2,048 x 512 on one 4-chip host: the compiler runs out of
    memory; exit 1 with the changes to try, microbatches first."""
    config = _config("base", {"model.scan_layers": True})
    assert command.run(config, SLICE) == 1
    text = capsys.readouterr().out
    assert "DOES NOT FIT v4:2x2x1" in text, text
    tries = text.split("try, in order:")[1].split("\n")
    assert tries[1].strip().startswith("--config.microbatches="), text
    assert "--topology v4-16" in text
    assert "fits=0" in text


def test_cpu_host_mesh_compiles_the_same_step(tmp_path):
    """The tests' own CPU config on this host's devices (fp32: XLA:CPU compiles bf16
    slowly)."""
    config = _config("cpu_small", {"eval_batch_size": 4})
    out = tmp_path / "cpu.json"
    assert command.run(config, "cpu", json_path=str(out)) == 0
    r = json.loads(out.read_text())["result"]
    assert r["fits"] and r["memory"]["aliased"] > 0
    assert abs(r["traced_flops"] / r["analytic_flops"] - 1) < 0.05


def test_bad_topology_or_mesh_is_one_line_exit_2():
    """Both commands at once (each starts JAX and loads libtpu)."""
    cases = {"valid forms: an accelerator type": ["--topology", "v9-64"],
             "valid meshes multiply to 4": ["--topology", SLICE, "--config.mesh.data=3"]}
    procs = {message: subprocess.Popen(
        [sys.executable, "-m", "linkbert_jax.aot", "--config", "tiny", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"))
        for message, args in cases.items()}
    for message, p in procs.items():
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 2, stderr[-2000:]
        assert "Traceback" not in stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], stderr[-2000:]


def test_training_path_never_needs_libtpu():
    """libtpu blocked: the training modules import, JAX starts on the CPU and the trainer
    builds its sharded state; none of it imports libtpu (acceptance: CPU/GPU users never
    install it)."""
    code = ("import sys; sys.modules['libtpu'] = None\n"
            "import jax\n"
            "from linkbert_jax import main\n"
            "from linkbert_jax.pretrain import recipe, trainer, steps\n"
            "from linkbert_jax.infra import step_costs, metrics_log\n"
            "from linkbert_jax.config_defaults import get_config\n"
            "c = get_config('tiny'); c.model.vocab_size = 512\n"
            "recipe.build(c)\n"
            "print('ok', jax.devices()[0].platform, 'libtpu' in sys.modules and "
            "sys.modules['libtpu'] is not None)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, env={k: v for k, v in os.environ.items()
                                         if k != "JAX_PLATFORMS"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split()[-3:] == ["ok", "cpu", "False"], p.stdout
