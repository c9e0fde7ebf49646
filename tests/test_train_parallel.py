"""Acceptance 3 and 4: mesh equivalence on 8 CPU devices, and two local processes.

Each case runs the real trainer in a subprocess (device counts are fixed at JAX start).
"""
import json

import numpy as np

from helpers.training import OVERRIDES, SOURCE, config_path, driver, free_port, result_of


def test_meshes_agree_and_shard_params_by_the_rules(tmp_path):
    meshes = [{"data": 1, "fsdp": 1, "tensor": 1}, {"data": 8, "fsdp": 1, "tensor": 1},
              {"data": 1, "fsdp": 8, "tensor": 1}, {"data": 2, "fsdp": 2, "tensor": 2}]
    cases = [{"mesh": m} for m in meshes] + [
        {"mesh": {"data": 16, "fsdp": 1, "tensor": 1}},
        {"mesh": {"data": 8, "fsdp": 1, "tensor": 1}, "overrides": {"global_batch_size": 12}}]
    spec = {"mode": "meshes", "config": config_path("cpu_small"), "workdir": str(tmp_path),
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


def test_two_processes_match_one_process(tmp_path):
    from linkbert_jax.checkpoint import checkpoints
    over = {**OVERRIDES, "mesh.data": 2, "mesh.fsdp": -1}
    base = {"config": config_path("cpu_small"), "overrides": over, "source": SOURCE}
    port = free_port()
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
