"""Fine-tuning survives preemption (issue 22, rows 9 and 11): it checkpoints through the
pretraining checkpoint code; SIGTERM saves and exits 0, also during an evaluation; the
same command run again (after SIGTERM or SIGKILL) resumes and ends with the same bits as
a run never stopped: parameters, predictions, results, metrics rows (none repeated);
finished seeds are reused; another run's checkpoint or results are refused; and
``--config.num_train_steps`` is honoured.

The in-process tests stop the loop at a chosen point (a scripted stop signal, asked at
every step and every evaluation batch); the CLI tests send real signals."""
import json
import os
import signal
import sys
import time

import pytest

from helpers import finetune_data, processes
from linkbert_jax.hf import export_dir, vocabulary
from linkbert_jax.infra import workdir_lock
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import config as ft_config
from linkbert_jax.finetune import loop, pretrained, resume, tasks, train
from linkbert_jax.finetune import run as ft_run
from linkbert_jax.data.samples import minilm_dir

TIMING = ("steps_per_sec", "examples_per_sec")
OUTPUTS = ("results.json", "dev_predictions.jsonl", "predictions.jsonl",
           "model/model.safetensors", "model/config.json")


def _rows(workdir) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f]


def assert_same_outputs(a, b) -> None:
    """Bitwise the same outputs; metrics rows the same (but their timing), none twice."""
    for name in OUTPUTS:
        with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
            assert fa.read() == fb.read(), f"{name} differs"
    rows = _rows(b)
    assert _rows(a) == rows
    kinds = [(r["step"], "loss" in r) for r in rows]
    assert len(kinds) == len(set(kinds)), "a metrics row is repeated"
    ckpt = os.path.join(b, "checkpoints")  # its steps removed when finished
    assert not os.path.exists(ckpt) or not [d for d in os.listdir(ckpt) if d[0].isdigit()]


# ---------------------------------------------------------------------------- in process

class ScriptedStop:
    """A signal that arrives just before the ``n``-th question (steps and evaluation
    batches alike)."""

    def __init__(self, n: int):
        self.n, self.calls, self.requested = n, 0, False

    def should_stop(self, step: int) -> bool:  # noqa: ARG002
        self.calls += 1
        self.requested = self.requested or self.calls >= self.n
        return self.requested


@pytest.fixture(scope="module")
def ft(tmp_path_factory):
    """12 steps of 8 (seqcls, packed), dev (2 batches) every 4 steps, test (1 batch)."""
    root = tmp_path_factory.mktemp("ft")
    pre = pretrained.load(finetune_data.tiny_bert(root / "tiny"))
    files = finetune_data.real_task("seqcls", root / "data", n_train=32, n_dev=32)
    c = ft_config.get_config("seqcls", max_seq_length=32, batch_size=8, eval_batch_size=16,
                             learning_rate=1e-3, num_train_steps=12, eval_every_steps=4,
                             log_every_steps=3, checkpoint_every_steps=5, pack_shapes=2)
    td = tasks.load(tasks.get_task("seqcls"), files, pretrained.load_tokenizer(
        pre.tokenizer_dir), c, str(root / "cache"))
    c = train.resolve_steps(c, len(td.splits["train"]))
    setup = train.build(c, pre, td)
    compiled = train.compile_steps(setup, td.task.loss, c)
    run = lambda workdir, config=c, **kw: loop.run_seed(config, pre, td, setup, compiled,
                                                        str(workdir), **kw)
    baseline = root / "baseline"
    return run, baseline, run(baseline), c


# Questions: steps 1-4 (1-4), dev batches (5, 6), steps 5-8 (7-10), dev (11, 12), steps
# 9-12 (13-16), the dev at the last step (17, 18), predictions on dev (19, 20), test (21).
@pytest.mark.parametrize("n", [3, 6, 11, 17, 20])
def test_stopped_anywhere_the_same_call_resumes_bitwise(ft, tmp_path, n, caplog):
    run, baseline, expected, _ = ft
    mine = {tmp_path / "notes.txt": b"mine", tmp_path / "checkpoints" / "notes.txt": b"too"}
    for path, content in mine.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    stop = ScriptedStop(n)
    assert run(tmp_path, stop=stop) is None
    assert stop.calls == n  # nothing more was computed: the save started at once
    if n in (6, 11, 17):
        assert "evaluation interrupted by a termination signal" in caplog.text
    assert run(tmp_path) == expected
    assert_same_outputs(baseline, tmp_path)
    assert all(path.read_bytes() == content for path, content in mine.items())


def test_finished_seed_is_reused_and_another_run_refused(ft, tmp_path):
    run, baseline, expected, c = ft
    mtimes = {name: os.stat(baseline / name).st_mtime_ns for name in OUTPUTS}
    assert run(baseline) == expected
    assert mtimes == {name: os.stat(baseline / name).st_mtime_ns for name in OUTPUTS}
    assert run(tmp_path, stop=ScriptedStop(3)) is None  # a checkpoint at step 3
    other = c.copy_and_resolve_references()
    other.learning_rate = 1e-4
    for workdir, what in ((baseline, "results.json"), (tmp_path, "checkpoints/3")):
        with pytest.raises(ConfigError) as err:
            run(workdir, config=other)
        msg = str(err.value)
        assert what in msg and "config.learning_rate: 0.001 -> 0.0001" in msg, msg
        assert "use a new --workdir" in msg and "\n" not in msg
    old = tmp_path / "older_version"  # results.json without the record of its run
    old.mkdir()
    (old / "results.json").write_text('{"seed": 42, "dev": {"accuracy": 0.5}}')
    with pytest.raises(ConfigError, match="results.json has no record of the run"):
        run(old)


def test_num_train_steps_overrides_epochs_and_negative_is_refused():
    given = ft_config.get_config("seqcls", batch_size=8, num_train_epochs=3.0)
    c = train.resolve_steps(given, 64)
    assert c.num_train_steps == 24  # 3 epochs of 8 steps
    assert given.num_train_steps == 0  # a copy: the caller's config is left as it was
    c = ft_config.get_config("seqcls", batch_size=8, num_train_epochs=3.0,
                             num_train_steps=5)
    c = train.resolve_steps(c, 64)
    assert c.num_train_steps == 5
    c.num_train_steps = -5
    with pytest.raises(ConfigError, match="num_train_steps is -5: it must be > 0, or 0"):
        train.resolve_steps(c, 64)


def test_pack_shapes_below_one_is_refused():
    c = train.resolve_steps(ft_config.get_config("seqcls", batch_size=8, pack_shapes=0), 64)
    with pytest.raises(ConfigError, match=r"pack_shapes 0: it must be >= 1 \(--config"):
        train.validate(c, None, None)  # refused before the model or tokenizer is looked at


def test_a_run_recorded_before_a_key_was_added_resumes_with_its_old_value():
    """``resume.ADDED``: a run recorded without ``config.pack_shapes`` had the default
    row counts, so it resumes with them and is refused with others."""
    current = resume.record(ft_config.get_config("seqcls"), {})
    older = {k: v for k, v in current.items() if k != "config.pack_shapes"}
    resume.check_same_run(older, current, "checkpoints/3")
    changed = {**current, "config.pack_shapes": 4}
    with pytest.raises(ConfigError, match="config.pack_shapes: 16 -> 4"):
        resume.check_same_run(older, changed, "checkpoints/3")


def test_a_second_run_on_the_workdir_is_refused_and_writes_nothing(ft, tmp_path, capsys):
    """Issue 22 row 4 for fine-tuning: one run per workdir (its lock names the holder)."""
    _, _, _, c = ft
    files = finetune_data.real_task("seqcls", tmp_path / "data", n_train=8, n_dev=8)
    wd = tmp_path / "wd"
    with workdir_lock.lock_dir(str(wd), what="fine-tuning run"):
        rc = ft_run.run(c.copy_and_resolve_references(), init=str(tmp_path / "never_read"),
                        files=files, workdir=str(wd))
        assert sorted(os.listdir(wd)) == [workdir_lock.LOCK_NAME]
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {wd} is in use") and f"pid {os.getpid()}" in err[0]
    assert not wd.exists()  # released: the directory the lock created, left empty, is gone


def test_the_model_records_its_vocabulary(ft):
    """Issue 22 item 2: the fine-tuned model's export record has the vocabulary hash of
    the tokenizer it was trained with (as the pretraining export's)."""
    _, baseline, _, _ = ft
    with open(baseline / "model" / export_dir.MARKER_NAME) as f:
        record = json.load(f)
    assert record[vocabulary.KEY] == vocabulary.of_tokenizer(minilm_dir())  # tiny_bert's
    assert vocabulary.of_hf_dir(str(baseline / "model"), "--init").sha256 == record[
        vocabulary.KEY]


# ---------------------------------------------------------------------------- the command

STEPS = 200  # per seed; 3 epochs of this data would be 24 steps


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """The command (2 seeds), and its outputs when never stopped."""
    root = tmp_path_factory.mktemp("cli")
    files = finetune_data.real_task("seqcls", root / "data", n_train=64, n_dev=32)
    argv = [sys.executable, "-m", "linkbert_jax.finetune", "--task", "seqcls", "--init",
            finetune_data.tiny_bert(root / "tiny"), "--train_file", files["train"],
            "--validation_file", files["validation"], "--test_file", files["test"],
            "--config.max_seq_length=32", "--config.batch_size=8",
            "--config.eval_batch_size=16", "--config.learning_rate=1e-3",
            f"--config.num_train_steps={STEPS}", "--config.eval_every_steps=50",
            "--config.checkpoint_every_steps=20", "--config.log_every_steps=1",
            "--config.pack_shapes=2", "--seeds", "1,2"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", LINKBERT_HUGEPAGES="0")
    command = lambda workdir: argv + ["--workdir", str(workdir)]
    baseline = root / "baseline"
    out = processes.finish(processes.start(command(baseline), root, root / "base.log", env))
    return command, env, baseline, out[0]


def _wait(proc, ready, timeout=300):
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, open(proc.log).read()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _max_step(path) -> int:
    return max((r["step"] for r in _rows(path)), default=0) if os.path.exists(
        os.path.join(path, "metrics.jsonl")) else 0


def _rerun(cli, workdir, log) -> str:
    command, env, baseline, _ = cli
    out = processes.finish(processes.start(command(workdir), workdir, log, env))[0]
    for seed in ("seed_1", "seed_2"):
        assert_same_outputs(baseline / seed, workdir / seed)
    for name in ("summary.md", "summary.json"):
        assert (baseline / name).read_bytes() == (workdir / name).read_bytes()
    return out


@pytest.mark.slow
def test_sigterm_saves_exits_zero_and_the_same_command_resumes_bitwise(cli, tmp_path):
    command, env, _, _ = cli
    work = tmp_path / "work"
    proc = processes.start(command(work), tmp_path, tmp_path / "victim.log", env)
    _wait(proc, lambda: _max_step(work / "seed_2") >= 3)  # seed 1 is finished
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    out = open(proc.log).read()
    assert proc.returncode == 0, out[-3000:]
    assert "received SIGTERM" in out and "run the same command again to resume" in out
    assert os.listdir(work / "seed_2" / "checkpoints")  # the step it stopped at
    assert not (work / "summary.md").exists()
    out = _rerun(cli, work, tmp_path / "rerun.log")
    assert "seed 1: finished earlier" in out and "seed 2: resumed from" in out


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_the_same_command_resumes_bitwise(cli, tmp_path):
    command, env, _, _ = cli
    work = tmp_path / "work"
    proc = processes.start(command(work), tmp_path, tmp_path / "victim.log", env)
    _wait(proc, lambda: _max_step(work / "seed_1") >= 45)  # saved at 40 (and 20)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert os.listdir(work / "seed_1" / "checkpoints")
    out = _rerun(cli, work, tmp_path / "rerun.log")
    assert "seed 1: resumed from" in out and "rows after step" in out


@pytest.mark.slow
def test_num_train_steps_is_honoured(cli):
    _, _, baseline, out = cli
    assert f"{STEPS} steps (num_train_steps of 64 examples" in out
    steps = [r["step"] for r in _rows(baseline / "seed_1") if "loss" in r]
    assert steps == list(range(1, STEPS + 1))
    with open(baseline / "seed_1" / "results.json") as f:
        assert json.load(f)["best_step"] in (50, 100, 150, 200)
