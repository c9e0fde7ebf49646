"""Issue 11, case 10: a bad config is one ``error:`` line naming the key, exit status 2
(an unknown key was a 55-line traceback; a negative step count ran nothing, exit 0)."""
import subprocess
import sys

import pytest

from helpers import REPO as ROOT
from helpers.outcomes import one_error_line
from helpers.synthetic import SyntheticSource
from helpers.training import small_config
from linkbert_jax import main


def _refused(module: str, args: list, workdir) -> str:
    """``python -m module *args``: exit status 2, one ``error:`` line (returned), and
    ``workdir`` not made."""
    p = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    assert not workdir.exists()
    return one_error_line(p.stderr)


@pytest.mark.parametrize("flag, message", [
    ("--config.nonexistent=1", "--config.nonexistent: the config has no such key; keys of "
                               "config: adam_b1, adam_b2"),
    ("--config.mesh.fdsp=2", "--config.mesh.fdsp: the config has no such key; keys of "
                             "config.mesh: data, fsdp, tensor"),
    ("--config.num_train_steps=abc", "--config.num_train_steps=abc: invalid literal for int()"),
])
def test_bad_config_flag_is_one_line(tmp_path, flag, message):
    wd = tmp_path / "wd"
    assert message in _refused("linkbert_jax.main",
                               ["--config", "cpu_small", "--workdir", str(wd), flag], wd)


@pytest.mark.parametrize("key, value", [("num_train_steps", -5),
                                        ("checkpoint_every_steps", 0),
                                        ("eval_every_steps", -1)])
def test_non_positive_counts_are_one_line(tmp_path, capsys, key, value):
    c = small_config(**{key: value})
    assert main.run(c, str(tmp_path), SyntheticSource(vocab_size=2048)) == 2
    line = one_error_line(capsys.readouterr().err)
    low = 0 if key == "eval_every_steps" else 1
    assert f"{key} is {value}: it must be at least {low} (--config.{key})" in line


@pytest.mark.parametrize("args, message", [
    (["--task", "bogus"], "ConfigError: task must be one of ['mc', 'multilabel', 'qa'"),
    (["--task", "seqcls", "--config.nokey=1"], "--config.nokey: the config has no such key"),
])
def test_finetune_bad_task_or_key_is_one_line(tmp_path, args, message):
    """The fine-tuning entry point parses flags as the trainer's does."""
    ft = tmp_path / "ft"
    assert message in _refused("linkbert_jax.finetune",
                               [*args, "--init", "x", "--train_file", "a",
                                "--validation_file", "b", "--workdir", str(ft)], ft)


def test_absl_commands_refuse_positional_arguments_before_main():
    """``runtime.run_absl`` (every absl command's start): arguments left after the flags
    are absl's usage error (status 1) and the command's ``main`` never runs."""
    code = ("from linkbert_jax.infra import runtime\n"
            "runtime.run_absl(lambda argv: print('main ran', argv), ARGV)")
    for argv, rc in ((["prog", "extra"], 1), (["prog"], 0)):
        p = subprocess.run([sys.executable, "-c", code.replace("ARGV", repr(argv))],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert p.returncode == rc, p.stderr[-3000:]
        assert ("main ran" in p.stdout) == (rc == 0), p.stdout
        assert ("unexpected arguments: ['extra']" in p.stderr) == (rc == 1), p.stderr
