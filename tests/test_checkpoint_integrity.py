"""Issue 11, case 5 and acceptance 2: damaged checkpoints are named, skipped and kept
aside; training falls back to the previous complete step and ends bitwise equal to an
uninterrupted run; export takes the latest complete *and valid* step."""
import glob
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers.synthetic import SyntheticSource
from helpers.training import small_config
from linkbert_jax.checkpoint import checkpoints, checksums
from linkbert_jax.pretrain import recipe, trainer
from linkbert_jax.errors import ConfigError, NonFiniteLossError

SOURCE = dict(vocab_size=2048, max_seq_length=32)


def _config(**kw):
    return small_config(num_train_steps=6, checkpoint_every_steps=2, keep_checkpoints=3,
                        async_checkpointing=False, eval_at_end=False, **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """An uninterrupted 6-step run saved at 2, 4, 6, and its final params."""
    wd = str(tmp_path_factory.mktemp("run"))
    trainer.train_and_evaluate(_config(), wd, SyntheticSource(**SOURCE))
    _, params, step = checkpoints.load_params(wd)
    assert step == 6
    return wd, params


def _abstract_state(c):
    return recipe.build(c).abstract_state


def _copy(finished, tmp_path) -> str:
    wd = str(tmp_path / "wd")
    shutil.copytree(finished[0], wd)
    return wd


def _data_files(wd, step, item="params"):
    files = glob.glob(os.path.join(wd, "checkpoints", str(step), item, "**", "d", "*"),
                      recursive=True)
    return sorted(files, key=os.path.getsize)


def flip_bytes(path, n=64):
    data = bytearray(open(path, "rb").read())
    mid = len(data) // 2
    for i in range(mid, mid + n):
        data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


def _unusable_lines(caplog):
    return [r.getMessage() for r in caplog.records if "is unusable" in r.getMessage()]


def _steps_run(wd):
    import json
    return [r["step"] for r in map(json.loads, open(os.path.join(wd, "metrics.jsonl")))
            if "loss" in r]


def test_flipped_bytes_fall_back_and_resume_bitwise(finished, tmp_path, caplog):
    wd = _copy(finished, tmp_path)
    flip_bytes(_data_files(wd, 6)[-1])
    with caplog.at_level(logging.WARNING, logger="linkbert_jax"):
        state = trainer.train_and_evaluate(_config(), wd, SyntheticSource(**SOURCE))
    [line] = _unusable_lines(caplog)
    assert "checkpoints/6 is unusable" in line and "checksums" in line
    assert "\n" not in line and "learning rate" not in caplog.text
    assert _steps_run(wd)[-2:] == [5, 6]  # resumed from step 4
    for a, b in zip(jax.tree_util.tree_leaves(finished[1]),
                    jax.tree_util.tree_leaves(jax.device_get(state.params))):
        assert np.array_equal(a, b)  # bitwise equal to the uninterrupted run
    kept = os.path.join(wd, checkpoints.UNUSABLE_DIR, "6")
    assert os.path.isdir(kept)  # the damaged step is kept for inspection
    assert checkpoints.is_complete(os.path.join(wd, "checkpoints", "4"))


def test_missing_file_and_bad_meta_fall_back_two_steps(finished, tmp_path, caplog):
    wd = _copy(finished, tmp_path)
    with open(os.path.join(wd, "checkpoints", "6", "meta", "metadata"), "w") as f:
        f.write("{not json")
    os.remove(_data_files(wd, 4)[-1])
    mgr = checkpoints.manager(wd, async_save=False)
    c = _config()
    abstract = _abstract_state(c)
    with caplog.at_level(logging.WARNING, logger="linkbert_jax"):
        step, params, _, meta = checkpoints.restore_latest_valid(mgr, abstract.params,
                                                                 abstract.opt_state)
    mgr.close()
    assert step == 2 and meta["step"] == 2
    lines = _unusable_lines(caplog)
    assert len(lines) == 2 and "checkpoints/6 is unusable" in lines[0]
    assert "JSONDecodeError" in lines[0] and "checkpoints/4 is unusable" in lines[1]
    assert sorted(os.listdir(os.path.join(wd, checkpoints.UNUSABLE_DIR))) == ["4", "6"]


def test_no_restorable_step_stops_and_moves_nothing(finished, tmp_path):
    wd = _copy(finished, tmp_path)
    for step in (2, 4, 6):
        flip_bytes(_data_files(wd, step)[-1])
    mgr = checkpoints.manager(wd, async_save=False)
    abstract = _abstract_state(_config())
    with pytest.raises(checkpoints.IntegrityError, match="no checkpoint in .* can be "
                       "restored: step 6: .*; step 4: .*; step 2: .*start over"):
        checkpoints.restore_latest_valid(mgr, abstract.params, abstract.opt_state)
    mgr.close()
    assert not os.path.exists(os.path.join(wd, checkpoints.UNUSABLE_DIR))


def test_export_takes_latest_valid_step(finished, tmp_path, caplog):
    wd = _copy(finished, tmp_path)
    flip_bytes(_data_files(wd, 6)[-1])
    with caplog.at_level(logging.WARNING, logger="linkbert_jax"):
        _, params, step = checkpoints.load_params(wd)
    assert step == 4 and checkpoints.latest_valid_step(wd) == 4
    assert "checkpoints/6 is unusable" in caplog.text
    assert os.path.isdir(os.path.join(wd, "checkpoints", "6"))  # read-only: not moved
    with pytest.raises(checkpoints.IntegrityError, match="checkpoints/6 is unusable"):
        checkpoints.load_params(wd, step=6)
    os.remove(os.path.join(wd, "checkpoints", "4", "params", "_METADATA"))
    assert checkpoints.load_params(wd)[2] == 2  # incomplete 4 skipped too


def test_other_shapes_are_a_config_error_not_a_fallback(finished, tmp_path):
    wd = _copy(finished, tmp_path)
    c = _config()
    c.model.intermediate_size = 96
    mgr = checkpoints.manager(wd, async_save=False)
    abstract = _abstract_state(c)
    with pytest.raises(ConfigError, match="checkpoint 6 .* saved by another model"):
        checkpoints.restore_latest_valid(mgr, abstract.params, abstract.opt_state)
    mgr.close()
    assert sorted(int(s) for s in os.listdir(os.path.join(wd, "checkpoints"))
                  if s.isdigit()) == [2, 4, 6]


def test_non_finite_values_are_refused_at_save_and_at_restore(tmp_path):
    params = {"w": np.ones((4, 3), np.float32)}
    mgr = checkpoints.manager(str(tmp_path), async_save=False)
    bad = {"w": params["w"].copy()}
    bad["w"][1, 2] = np.inf
    with pytest.raises(NonFiniteLossError, match=r"params\['w'\].*after step 1: not saved"):
        checkpoints.save(mgr, 1, bad, {}, {"step": 1})
    assert mgr.all_steps() == []
    with pytest.raises(checkpoints.IntegrityError, match=r"params\['w'\].*NaN/Inf"):
        checkpoints.verify({}, "params", bad)
    mgr.close()


def test_checksums_host_and_device_agree_and_see_changes():
    rng = np.random.default_rng(0)
    tree = {"a": rng.normal(size=(16, 8)).astype(np.float32), "b": np.float32(3.0),
            "c": np.arange(10, dtype=np.int32), "d": np.zeros((0, 3), np.float32),
            "e": np.asarray(jnp.asarray(rng.normal(size=(5, 4)), jnp.bfloat16))}
    host = checksums.fingerprints(tree, host=True)
    assert host == checksums.fingerprints(jax.tree_util.tree_map(jnp.asarray, tree),
                                          host=False)
    changed = dict(tree, a=tree["a"].copy())
    changed["a"][3, 5] = np.nextafter(changed["a"][3, 5], np.float32(9))  # one bit
    assert checksums.fingerprints(changed)["['a']"][0] != host["['a']"][0]
    swapped = dict(tree, a=tree["a"][[1, 0] + list(range(2, 16))])  # rows moved
    assert checksums.fingerprints(swapped)["['a']"][0] != host["['a']"][0]
