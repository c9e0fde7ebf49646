"""One mapper from errors to exit statuses (``linkbert_jax.errors.run_cli``) for every
command: a user's error is one ``error:`` line and exit 2 (3 for non-finite values, 130
for an interruption); a bug keeps its traceback."""
import os
import re
import subprocess
import sys

import pytest

from helpers import REPO
from helpers.outcomes import one_error_line
from linkbert_jax import errors

# One bad input per command: (argv after ``python``, what the one line says). Every
# console script of setup.py is one of them (test_every_console_script_is_covered).
COMMANDS = {
    "linkbert-build": (["-m", "linkbert_jax.data.build", "--input", "{tmp}/c.jsonl",
                        "--format", "jsonl", "--output_dir", "{tmp}/out", "--tokenizer",
                        "{tmp}", "--relation_probs", "a,b,c"],
                       "--relation_probs needs 3 non-negative numbers, got 'a,b,c'"),
    "beam_build": (["-m", "linkbert_jax.data.beam_build", "--input", "{tmp}", "--format",
                    "hf", "--output_dir", "{tmp}/out", "--tokenizer", "{tmp}"],
                   "--format hf is local only"),
    "linkbert-train": (["-m", "linkbert_jax.main", "--config", "tiny", "--workdir",
                        "{tmp}/wd", "--config.data_dir={tmp}/none"],
                       "data_dir '{tmp}/none' does not exist or is not a directory"),
    "linkbert-demo": (["-m", "linkbert_jax.demo", "--workdir", "{tmp}/demo"],
                      "$LINKBERT_PYTHON_DOCS={tmp}/none is not the HTML root"),
    "linkbert-export": (["-m", "linkbert_jax.hf.export", "--workdir", "{tmp}/none",
                         "--output_dir", "{tmp}/out"], "no training config"),
    "convert_to_pytorch": (["tools/convert_to_pytorch.py", "export", "--workdir",
                            "{tmp}/none", "--output_dir", "{tmp}/out"], "no training config"),
    "linkbert-finetune": (["-m", "linkbert_jax.finetune", "--task", "seqcls", "--init", "x",
                           "--train_file", "a", "--validation_file", "b", "--workdir",
                           "{tmp}/ft", "--seeds", "1,x"],
                          "--seeds 1,x: expected integers separated by commas"),
    "linkbert-aot": (["-m", "linkbert_jax.aot", "--config", "tiny", "--topology", "v9-64"],
                     "valid forms: an accelerator type"),
    "ablate": (["-m", "linkbert_jax.ablate", "--workdir", "{tmp}/ab", "--dry_run",
                "--arms", "bogus"], "--arms: unknown arm bogus"),
    "linktask": (["-m", "linkbert_jax.ablate.linktask", "--build", "{tmp}", "--output_dir",
                  "{tmp}/task"], "not a finished build"),
}


def test_every_console_script_is_covered():
    with open(os.path.join(REPO, "setup.py")) as f:
        scripts = re.findall(r'"(linkbert-[\w-]+) = ', f.read())
    assert scripts and set(scripts) <= set(COMMANDS)


def test_every_console_script_is_a_cli_function():
    """One name for every entry point: ``module:cli`` (``main`` is the program, ``cli``
    sets up the process and exits with its status)."""
    import importlib
    with open(os.path.join(REPO, "setup.py")) as f:
        targets = re.findall(r'"linkbert-[\w-]+ = ([\w.]+):(\w+)"', f.read())
    assert len(targets) == 6, targets
    for module, name in targets:
        assert name == "cli" and callable(getattr(importlib.import_module(module), name))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_bad_input_is_one_line_exit_2(tmp_path, name):
    argv, says = COMMANDS[name]
    env = dict(os.environ, JAX_PLATFORMS="cpu", LINKBERT_HUGEPAGES="0",
               LINKBERT_PYTHON_DOCS=str(tmp_path / "none"))
    p = subprocess.run([sys.executable, *[a.format(tmp=tmp_path) for a in argv]], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    assert says.format(tmp=tmp_path) in one_error_line(p.stderr)


# The argparse commands (errors.ArgumentParser): a command line that does not parse.
USAGE = {"linkbert-build": "linkbert_jax.data.build", "beam_build": "linkbert_jax.data.beam_build",
         "linkbert-export": "linkbert_jax.hf.export", "linkbert-demo": "linkbert_jax.demo",
         "ablate": "linkbert_jax.ablate", "linktask": "linkbert_jax.ablate.linktask"}


@pytest.mark.parametrize("name", sorted(USAGE))
def test_a_command_line_that_does_not_parse_is_one_line_exit_2(name):
    """Not argparse's usage block: one ``error:`` line naming the flag, then ``--help``."""
    p = subprocess.run([sys.executable, "-m", USAGE[name], "--no_such_flag"], cwd=REPO,
                       env=dict(os.environ, JAX_PLATFORMS="cpu", LINKBERT_HUGEPAGES="0"),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    line = one_error_line(p.stderr)
    assert line.startswith(f"error: python -m {USAGE[name]}: "), line
    assert ("unrecognized arguments: --no_such_flag" in line
            or "the following arguments are required" in line), line
    assert line.endswith("(--help for the usage)"), line
    assert "usage:" not in p.stderr, p.stderr


def _raises(e: BaseException):
    def program():
        raise e
    return program


@pytest.mark.parametrize("error, status, line", [
    (errors.DataError("c.jsonl:3: no field 'text'"), 2, "error: c.jsonl:3: no field 'text'"),
    (errors.NonFiniteLossError("loss is nan at step 3"), 3, "error: loss is nan at step 3"),
    (errors.CommandFailedError("the command above failed", 5), 5,
     "error: the command above failed"),
    (FileNotFoundError("x: no such file"), 2, "error: x: no such file; kept"),
    (KeyboardInterrupt(), 130, "error: interrupted; kept"),
])
def test_user_errors_are_one_line_with_their_status(capsys, error, status, line):
    assert errors.run_cli(_raises(error), kept="kept") == status
    assert capsys.readouterr().err == line + "\n"


def test_a_bug_keeps_its_traceback_and_results_pass_through(capsys):
    with pytest.raises(ZeroDivisionError):
        errors.run_cli(lambda: 1 / 0)
    with pytest.raises(KeyError):  # not a user's error, whatever its message
        errors.run_cli(_raises(KeyError("no config field")))
    assert errors.run_cli(lambda: 1) == 1  # a status (aot: does not fit)
    assert errors.run_cli(lambda: {"manifest": 1}) == 0  # a result
    assert capsys.readouterr().err == ""


def test_old_names_are_the_same_classes():
    from linkbert_jax.checkpoint import checkpoints, orbax_faults
    from linkbert_jax.hf import export_dir
    from linkbert_jax.pretrain import input_pipeline
    from linkbert_jax.infra import workdir_lock
    from linkbert_jax.data import readers, records
    from linkbert_jax.finetune import data
    assert readers.DataError is data.DataError is errors.DataError
    assert issubclass(errors.DataError, errors.ConfigError)
    assert (checkpoints.IntegrityError, checkpoints.NoValidCheckpointError,
            export_dir.OutputDirError, input_pipeline.CorruptShardError,
            orbax_faults.CheckpointWriteError, workdir_lock.LockedError,
            records.RecordError) == (
        errors.IntegrityError, errors.NoValidCheckpointError, errors.OutputDirError,
        errors.CorruptShardError, errors.CheckpointWriteError, errors.LockedError,
        errors.RecordError)
