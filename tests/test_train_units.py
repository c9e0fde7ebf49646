"""Fast in-process checks of the training pieces: objectives, optimizer, sharding rules,
microbatch equivalence, config files, and the pre-compile error messages."""
import glob
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers.synthetic import SyntheticSource, make_batch
from helpers.training import config_path, load, small_config
from linkbert_jax import config_defaults, objectives, optimizer, sharding
from linkbert_jax.pretrain import input_checks, recipe, trainer
from linkbert_jax.config_defaults import load_config_file
from linkbert_jax.errors import ConfigError
from linkbert_jax.model import ModelConfig


def test_configs_follow_the_paper():
    expected = {"tiny": (5e-3, 10_000, 5_000, 2048), "base": (3e-4, 40_000, 5_000, 2048),
                "large": (2e-4, 40_000, 5_000, 2048), "bio_base": (6e-4, 62_500, 6_250, 8192),
                "bio_large": (4e-4, 62_500, 12_500, 8192)}
    for name, (lr, n, warm, batch) in expected.items():
        c = load(name)
        assert (c.learning_rate, c.num_train_steps, optimizer.warmup_steps(c),
                c.global_batch_size, c.seq_length) == (lr, n, warm, batch, 512), name
        assert (c.adam_b1, c.adam_b2, c.weight_decay, c.model.dtype) == (0.9, 0.98, 0.01,
                                                                          "bfloat16")
        ModelConfig.from_dict(dict(c.model))
        doc = open(config_path(name)).read()
        assert f"python -m linkbert_jax.main --config {name} " in doc
    assert load("base").init_from_hf and load("bio_base").model.vocab_size == 28895
    assert len(glob.glob(os.path.join(config_defaults.CONFIGS_DIR, "[!_]*.py"))) >= 6


def test_objectives_sums_aggregate_exactly():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(4, 3, 10)), jnp.float32)
    logits = logits.at[..., 8:].set(-jnp.inf)  # padded vocabulary columns
    ids = jnp.asarray(rng.integers(0, 8, (4, 3)))
    w = jnp.asarray([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], jnp.float32)
    whole = objectives.mlm_stats(logits, ids, w)
    parts = [objectives.mlm_stats(logits[i:i + 2], ids[i:i + 2], w[i:i + 2]) for i in (0, 2)]
    for k in whole:
        np.testing.assert_allclose(whole[k], parts[0][k] + parts[1][k], rtol=1e-6)
    ref = -jax.nn.log_softmax(logits[..., :8])
    ref = jnp.take_along_axis(ref, ids[..., None], -1)[..., 0]
    np.testing.assert_allclose(whole["mlm_loss_sum"], jnp.sum(ref * w), rtol=1e-6)
    drp = objectives.drp_stats(jnp.eye(3)[jnp.array([0, 1, 2, 0])] * 5.0,
                               jnp.array([0, 1, 1, 2]), jnp.ones(4))
    m = objectives.summarize({**whole, **drp})
    assert float(m["drp_accuracy"]) == 0.5
    assert float(m["drp_accuracy_contiguous"]) == 1.0 and float(m["drp_accuracy_linked"]) == 0
    assert math.isclose(float(m["drp_accuracy_random"]), 0.5)


def test_weight_decay_mask_and_schedule():
    params = {"encoder": {"layer_0": {"attention_LayerNorm": {"scale": 1, "bias": 1},
                                      "intermediate": {"kernel": 1, "bias": 1}}},
              "mlm": {"bias": 1}, "embeddings": {"word_embeddings": {"embedding": 1}}}
    mask = optimizer.weight_decay_mask(params)
    assert mask["encoder"]["layer_0"]["intermediate"] == {"kernel": True, "bias": False}
    assert mask["encoder"]["layer_0"]["attention_LayerNorm"] == {"scale": False, "bias": False}
    assert mask["mlm"]["bias"] is False and mask["embeddings"]["word_embeddings"]["embedding"]
    c = load("bio_base")
    sched = optimizer.learning_rate_schedule(c)
    assert float(sched(0)) == 0.0
    assert math.isclose(float(sched(6250)), 6e-4, rel_tol=1e-5)
    assert math.isclose(float(sched(62_500)), 0.0, abs_tol=1e-9)
    assert math.isclose(float(sched(6250 + 28_125)), 3e-4, rel_tol=1e-4)
    # the same numbers as optax's join of two linear schedules, traced or not
    w, n = optimizer.warmup_steps(c), c.num_train_steps
    ref = optax.join_schedules([optax.linear_schedule(0.0, 6e-4, w),
                                optax.linear_schedule(6e-4, 0.0, n - w)], [w])
    counts = jnp.arange(0, n + 50, 37, dtype=jnp.int32)
    traced = jax.jit(lambda x, k: optimizer.learning_rate_schedule(c, x)(k))
    for got in (sched(counts), traced(optimizer.schedule_numbers(c), counts)):
        np.testing.assert_allclose(got, ref(counts), rtol=1e-6, atol=1e-10)  # FMA


def test_clipping_equals_optax_clip_by_global_norm():
    """The clip multiplies by one factor where optax divides each element by the norm:
    the same gradients to rounding above the threshold, the very same below it."""
    keys = jax.random.split(jax.random.key(0), 3)
    grads = {"w": jax.random.normal(keys[0], (64, 32)), "b": jax.random.normal(keys[1], (32,)),
             "e": {"x": jax.random.normal(keys[2], (7, 5, 3))}}
    norm = float(optax.tree.norm(grads))
    for max_norm in (norm / 10, norm / 2, norm * 2):
        ours, _ = optimizer.clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
        ref, _ = optax.clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=3e-7, atol=0), ours, ref)
        clipped = float(optax.tree.norm(ours))
        assert math.isclose(clipped, min(norm, max_norm), rel_tol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a, b), ours, grads)


def test_one_train_program_for_every_learning_rate_and_length():
    """The schedule's numbers are an argument of the jitted train step: runs that differ
    in learning rate, warmup or length lower to the same program (one compile, one
    persistent-cache entry); another batch size does not."""
    def program(**kw):
        r = recipe.build(small_config(**kw), {"vocab_size": 2048})
        train, _ = r.compile()
        return train.lower(r.abstract_state, r.abstract_batch(), r.abstract_key()).as_text()
    first = program()
    assert program(learning_rate=3e-3, num_train_steps=500, warmup_steps=7) == first
    assert program(global_batch_size=16) != first


def test_microbatches_match_one_big_batch():
    c = small_config()
    batch = make_batch(0, 0, 8, c.seq_length, 6, 2048)
    batch["example_weight"][-1] = 0.0  # weighted rows must count the same either way
    outs = []
    for k in (1, 4):
        c.microbatches = k
        built = recipe.build(c)
        train, _ = built.compile()
        state = built.init_state(jax.random.key(0))
        for _ in range(2):
            state, m = train(state, sharding.global_batch(batch, built.data_sharding),
                             jax.random.key(1))
        outs.append((float(m["loss"]), state.params))
    assert abs(outs[0][0] - outs[1][0]) < 1e-5
    diff = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), outs[0][1],
                                  outs[1][1])
    assert max(jax.tree_util.tree_leaves(diff)) < 1e-5


def test_fit_spec_replicates_what_does_not_divide():
    mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": -1})
    spec = jax.sharding.PartitionSpec("tensor", "fsdp")
    assert sharding.fit_spec(spec, (2, 8), mesh) == spec  # all sizes 1 here: kept
    assert sharding.mesh_shape({"data": 2, "fsdp": -1, "tensor": 2}, 8) == (2, 2, 2)
    assert sharding.mesh_shape({"data": 1, "fsdp": 1, "tensor": 1}, 8) == (1, 1, 1)
    with pytest.raises(ConfigError, match="needs 16 devices but 8"):
        sharding.mesh_shape({"data": 16, "fsdp": 1, "tensor": 1}, 8)


@pytest.mark.parametrize("change, message", [
    (dict(mesh={"data": 2, "fsdp": 1, "tensor": 1}), "needs 2 devices but 1 are available"),
    (dict(global_batch_size=10, microbatches=4), "global_batch_size 10 is not divisible"),
    (dict(init_from_hf="/nonexistent/bert"), "init_from_hf '/nonexistent/bert' is not a"),
    (dict(data_dir="/nonexistent/data"), "data_dir '/nonexistent/data' does not exist"),
    (dict(data_dir=""), "config.data_dir is not set"),
])
def test_config_errors_before_compiling(tmp_path, change, message):
    c = small_config()
    c.update(change)
    source = None if "data_dir" in change else SyntheticSource(vocab_size=2048)
    with pytest.raises(ConfigError, match=message):
        trainer.train_and_evaluate(c, str(tmp_path), source)


def test_vocabulary_mismatch_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data's vocabulary has 30522 tokens but the model"):
        trainer.train_and_evaluate(small_config(), str(tmp_path),
                                   SyntheticSource(vocab_size=30522))


def test_flops_model():
    from linkbert_jax.infra import metrics_log
    cfg = ModelConfig()  # BERT-base
    f = metrics_log.flops_per_sequence(cfg, 512, 80)
    # 6 * 85M * 512 + attention + head: about 2.9e11 per sequence
    assert 2.5e11 < f < 3.3e11
    assert metrics_log.peak_flops_per_device("TPU v4") == 275e12
    assert metrics_log.peak_flops_per_device("cpu", 1e9) == 1e9
    cpu_peak = metrics_log.peak_flops_per_device("cpu")  # measured: a large matmul
    assert 1e9 < cpu_peak < 1e14

    class Dev:
        def __init__(self, kind):
            self.device_kind = kind
    # Accelerators add up; CPU "devices" share the cores the measured matmul already used.
    assert metrics_log.peak_flops_total([Dev("TPU v4")] * 8) == 8 * 275e12
    assert metrics_log.peak_flops_total([Dev("cpu")] * 8, 1e9) == 1e9


def test_config_changes_against_the_saved_config(tmp_path):
    from linkbert_jax.checkpoint import checkpoints
    saved = {"seq_length": 64, "masking": {"max_predictions": 20, "mask_prob": 0.15},
             "data_dir": "/a"}
    assert checkpoints.config_changes(str(tmp_path), saved) == []  # nothing saved yet
    checkpoints.write_config(str(tmp_path), saved)
    assert checkpoints.config_changes(str(tmp_path), saved) == []
    new = {"seq_length": 64, "masking": {"max_predictions": 10, "mask_prob": 0.15},
           "data_dir": "/b", "seed": 1}
    assert checkpoints.config_changes(str(tmp_path), new) == [
        "data_dir: '/a' -> '/b'", "masking.max_predictions: 20 -> 10", "seed: None -> 1"]
    assert checkpoints.config_changes(str(tmp_path), new, ignore=("data_dir", "seed")) == [
        "masking.max_predictions: 20 -> 10"]


def test_demo_says_when_a_finished_run_used_another_config(tmp_path):
    from linkbert_jax import demo
    from linkbert_jax.checkpoint import checkpoints
    config_file = config_path("cpu_minilm")
    args = demo.parse_args(["--from_scratch", "--steps", "8"])  # no MiniLM lookup needed
    overrides = demo.train_overrides(args, "/data")
    planned = load_config_file(config_file, overrides)
    checkpoints.write_config(str(tmp_path), planned.to_dict())
    assert demo.changed_since(str(tmp_path), config_file, overrides) == []
    overrides["learning_rate"] = 1.0
    assert demo.changed_since(str(tmp_path), config_file, overrides) == [
        f"learning_rate: {planned.learning_rate!r} -> 1.0"]


@pytest.mark.parametrize("processes, manifest_change, message", [
    (1, dict(max_seq_length=64), "seq_length 32 < the data's max_seq_length 64"),
    (2, dict(files={"train": [{}] * 4, "eval": [{}]}),
     "split 'eval' of the data has 1 file.s., fewer than the 2 processes"),
    (2, dict(files={"train": [{}], "eval": [{}] * 2}),
     "split 'train' of the data has 1 file.s., fewer than the 2 processes"),
])
def test_data_that_cannot_serve_the_run_fails_at_start_up(monkeypatch, processes,
                                                          manifest_change, message):
    c = small_config(eval_every_steps=2)
    manifest = {"vocab_size": 2048, "max_seq_length": 32, **manifest_change}
    monkeypatch.setattr(jax, "process_count", lambda: processes)
    with pytest.raises(ConfigError, match=message):  # the inputs' checks (not the mesh's)
        input_checks.check(c, manifest, recipe.model_config_from(c, manifest))


def test_too_few_eval_files_are_fine_without_eval(monkeypatch):
    c = small_config(eval_every_steps=0, eval_at_end=False)
    manifest = {"vocab_size": 2048, "max_seq_length": 32,
                "files": {"train": [{}] * 2, "eval": [{}]}}
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    input_checks.check(c, manifest, recipe.model_config_from(c, manifest))  # passes
    with pytest.raises(ConfigError, match="does not divide over 2 processes"):  # the mesh's
        recipe.build(c, manifest)
