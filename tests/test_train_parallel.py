"""Acceptance 3 and 4: mesh equivalence on 8 CPU devices, and two local processes.

Each case runs the real trainer in a subprocess (device counts are fixed at JAX start).
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# cpu_small (tiny architecture, real 28,996 vocabulary), a few short steps.
OVERRIDES = {"model.vocab_size": 28996, "num_train_steps": 3, "global_batch_size": 16, "seq_length": 32,
             "masking.max_predictions": 5, "log_every_steps": 1,
             "checkpoint_every_steps": 1000, "eval_at_end": False,
             "async_checkpointing": False}
SOURCE = {"vocab_size": 28996, "max_seq_length": 32}


def driver(spec: dict, devices: int, **popen):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.Popen([sys.executable, os.path.join(HERE, "train_driver.py"),
                             json.dumps(spec)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def result_of(proc, timeout=400):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def test_meshes_agree_and_shard_params_by_the_rules(tmp_path):
    meshes = [{"data": 1, "fsdp": 1, "tensor": 1}, {"data": 8, "fsdp": 1, "tensor": 1},
              {"data": 1, "fsdp": 8, "tensor": 1}, {"data": 2, "fsdp": 2, "tensor": 2}]
    cases = [{"mesh": m} for m in meshes] + [
        {"mesh": {"data": 16, "fsdp": 1, "tensor": 1}},
        {"mesh": {"data": 8, "fsdp": 1, "tensor": 1}, "overrides": {"global_batch_size": 12}}]
    spec = {"mode": "meshes", "config": "configs/cpu_small.py", "workdir": str(tmp_path),
            "overrides": OVERRIDES, "source": SOURCE, "meshes": cases}
    out, _ = result_of(driver(spec, 8))
    res = json.loads(out.split("RESULT ", 1)[1])
    ref = res[0]["losses"]
    assert len(ref) == 3 and res[0]["devices"] == 8
    for r in res[1:4]:
        np.testing.assert_allclose(r["losses"], ref, atol=1e-5, rtol=0, err_msg=str(r["mesh"]))
    emb = "['embeddings']['word_embeddings']['embedding']"
    q = "['encoder']['layer_0']['attention']['query']['kernel']"
    mlp = "['encoder']['layer_0']['intermediate']['kernel']"
    ln = "['encoder']['layer_0']['output_LayerNorm']['scale']"
    single, data8, fsdp8, mixed = (r["specs"] for r in res[:4])
    assert single[emb][1] == data8[emb][1] == [29056, 128]  # 28,996 padded to 128s
    assert fsdp8[emb] == ["('tensor', 'fsdp')", [29056, 16]]
    assert fsdp8[mlp][1] == [16, 512]
    assert mixed[emb] == ["('tensor', 'fsdp')", [14528, 64]]
    assert mixed[q] == ["('fsdp', 'tensor', None)", [64, 1, 64]]
    assert mixed[mlp] == ["('fsdp', 'tensor')", [64, 256]]
    assert mixed[ln] == ["('fsdp',)", [64]]
    assert "needs 16 devices but 8 are available" in res[4]["error"]
    assert "global_batch_size 12 is not divisible by the data-parallel size 8" in res[5]["error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    from linkbert_jax import checkpoints
    over = {**OVERRIDES, "mesh.data": 2, "mesh.fsdp": -1}
    base = {"config": "configs/cpu_small.py", "overrides": over, "source": SOURCE}
    port = _free_port()
    procs = [driver({**base, "workdir": str(tmp_path / "multi"), "distributed": {
        "coordinator": f"localhost:{port}", "num_processes": 2, "process_id": i}}, 2)
        for i in range(2)]
    single = driver({**base, "workdir": str(tmp_path / "single")}, 4)
    for p in procs + [single]:
        result_of(p)

    def losses(d):
        rows = [json.loads(x) for x in open(tmp_path / d / "metrics.jsonl")]
        return [r["loss"] for r in rows if "loss" in r]

    assert len(losses("multi")) == 3
    np.testing.assert_allclose(losses("multi"), losses("single"), atol=1e-5, rtol=0)
    _, pm, sm = checkpoints.load_params(str(tmp_path / "multi"))
    _, ps, ss = checkpoints.load_params(str(tmp_path / "single"))
    assert sm == ss == 3
    for a, b in zip(*(map(np.asarray, __import__("jax").tree_util.tree_leaves(t))
                      for t in (pm, ps))):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
