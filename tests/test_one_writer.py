"""Issue 22, row 4: two trainers on one workdir. The second is refused with one line
naming the first (exit 2) and changes nothing in the workdir; the first goes on and
releases the lock on SIGTERM. The config each checkpoint was trained with is saved with
it, and export and its model card report that one, not the workdir's latest config.json."""
import json
import os
import signal
import socket

from helpers.outcomes import one_error_line, tree_hashes
from helpers.synthetic import SyntheticSource
from helpers.training import (OVERRIDES, SMALL_MODEL, config_path, driver, metric_rows,
                              result_of, small_config, wait_for)
from linkbert_jax import main
from linkbert_jax.checkpoint import checkpoints, step_config
from linkbert_jax.hf import export
from linkbert_jax.data.samples import minilm_dir
from linkbert_jax.infra.workdir_lock import LOCK_NAME

def test_a_second_trainer_is_refused_and_changes_nothing(tmp_path, capsys):
    wd = tmp_path / "wd"
    over = {**OVERRIDES, **SMALL_MODEL, "num_train_steps": 500, "checkpoint_every_steps": 2,
            "learning_rate": 1e-3}
    first = driver({"config": config_path("cpu_small"), "workdir": str(wd), "overrides": over,
                    "source": {"vocab_size": 2048, "max_seq_length": 32, "step_sleep": 0.25}}, 1)
    wait_for(lambda: checkpoints.is_complete(str(wd / "checkpoints" / "2")), first)
    os.kill(first.pid, signal.SIGSTOP)  # the workdir holds still while the second one tries
    try:
        before = tree_hashes(wd, dirs=True)
        second = small_config(learning_rate=5e-3, num_train_steps=500, eval_at_end=False)
        rc = main.run(second, str(wd), SyntheticSource(vocab_size=2048, max_seq_length=32),
                      command=["linkbert-train", "--config.learning_rate=0.005"])
        err = capsys.readouterr().err
        after = tree_hashes(wd, dirs=True)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert rc == 2, err[-3000:]
    line = one_error_line(err)
    assert f"is in use: its trainer is pid {first.pid} on host {socket.gethostname()}" in line
    assert after == before  # no metrics appended, no config or command history rewritten
    first.send_signal(signal.SIGTERM)
    _, first_err = result_of(first, timeout=120)  # the first saves and exits 0
    assert not (wd / LOCK_NAME).exists()
    with open(wd / checkpoints.CONFIG_NAME) as f:
        assert json.load(f)["learning_rate"] == 1e-3
    steps = [r["step"] for r in metric_rows(wd) if "loss" in r]
    assert steps == list(range(1, len(steps) + 1))  # one writer: no interleaved rows


def _export_card(wd: str, out: str, *step) -> str:
    args = ["--workdir", wd, "--output_dir", out, "--tokenizer", minilm_dir(), "--no_verify"]
    assert export.main(args + [f"--step={s}" for s in step]) == 0
    with open(os.path.join(out, "README.md")) as f:
        return f.read()


def _lr_and_commands(card: str) -> str:
    """The card's learning rate row and its training commands."""
    lines = card.splitlines()
    return "\n".join(x for x in lines if x.startswith(("| learning rate", "linkbert-train")))


def test_export_reports_the_config_its_step_was_trained_with(tmp_path, capsys):
    wd = str(tmp_path / "wd")
    source = SyntheticSource(vocab_size=30522, max_seq_length=32)  # MiniLM's vocabulary
    c = small_config(num_train_steps=4, checkpoint_every_steps=2, eval_at_end=False,
                     learning_rate=1e-3)
    c.model.vocab_size = 30522
    runs = [["linkbert-train", f"--config.learning_rate={lr}"] for lr in (0.001, 0.005)]
    assert main.run(c, wd, source, command=runs[0]) == 0
    # Started again with another learning rate: the run is done, so it trains nothing,
    # but config.json now says 0.005 (as it would after a start killed before its save).
    c.learning_rate = 5e-3
    assert main.run(c, wd, source, command=runs[1]) == 0
    with open(os.path.join(wd, checkpoints.CONFIG_NAME)) as f:
        assert json.load(f)["learning_rate"] == 5e-3
    assert step_config.read(wd, 4)["config"]["learning_rate"] == 1e-3
    card = _export_card(wd, str(tmp_path / "hf4"))
    assert "| learning rate | 0.001 peak" in card and "0.005" not in _lr_and_commands(card)
    assert "linkbert-train --config.learning_rate=0.001" in _lr_and_commands(card)
    # Resumed with lr 0.005 to step 6: step 6 says 0.005 and both commands; step 4 still
    # 0.001 and only the command that trained it.
    c.num_train_steps = 6
    assert main.run(c, wd, source, command=runs[1]) == 0
    card6 = _export_card(wd, str(tmp_path / "hf6"))
    assert "| learning rate | 0.005 peak" in card6 and "learning_rate=0.001" in card6
    card4 = _export_card(wd, str(tmp_path / "hf4b"), 4)
    assert "| learning rate | 0.001 peak" in card4
    assert "0.005" not in _lr_and_commands(card4)
    assert "--config.learning_rate=0.001" in card4


def test_a_step_saved_before_configs_were_recorded_uses_config_json(tmp_path, caplog):
    wd = str(tmp_path)
    checkpoints.write_config(wd, {"model": {"vocab_size": 5}, "learning_rate": 0.01})
    meta = tmp_path / "checkpoints" / "3" / "meta"
    meta.mkdir(parents=True)
    (meta / "metadata").write_text(json.dumps({"step": 3}))  # an older save's meta
    got = step_config.read(wd, 3)
    assert got == {"config": {"model": {"vocab_size": 5}, "learning_rate": 0.01},
                   "commands": []}
    assert "checkpoints/3 records no training config (saved by an older version)" \
        in caplog.text
