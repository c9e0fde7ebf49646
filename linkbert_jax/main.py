r"""Pretrain LinkBERT: ``python -m linkbert_jax.main --config NAME --workdir DIR`` (or the
console script ``linkbert-train``). ``NAME`` is a packaged config (``linkbert_jax/configs``:
tiny, base, large, ...) or the path of a config file.

Any config key can be overridden, e.g. ``--config.data_dir=DIR --config.mesh.fsdp=-1``.
On TPU pods and SLURM/GPU clusters ``jax.distributed.initialize()`` finds its peers by
itself; elsewhere pass ``--coordinator_address=host:port --num_processes=N
--process_id=I``. Restarting the same command resumes from the workdir.
"""
from __future__ import annotations

import functools
import sys
import types

from absl import flags
from ml_collections import config_flags

from linkbert_jax import errors
from linkbert_jax.infra import runtime


@functools.cache
def define_flags() -> types.SimpleNamespace:
    """The command's absl flags, defined when it starts (``cli``), not at import: any
    module of the package imports next to any other (fine-tuning's ``--config`` too)."""
    coordinator, num_processes, process_id = runtime.define_distributed_flags()
    f = types.SimpleNamespace(
        config=config_flags.DEFINE_config_file(
            "config", None, "Training config: a packaged name (tiny, base, ...) or a file.",
            lock_config=True),
        workdir=flags.DEFINE_string("workdir", None,
                                    "Checkpoints, metrics and config go here."),
        coordinator=coordinator, num_processes=num_processes, process_id=process_id,
        take_over=runtime.define_take_over_lock_flag())
    flags.mark_flags_as_required(["config", "workdir"])
    return f


def run(config, workdir: str, source=None, *, coordinator=None, num_processes=None,
        process_id=None, command=None, take_over_lock=False) -> int:
    """The whole program as a function (tests call it with a synthetic ``source``).
    ``command``: the command line, recorded in the workdir for the model card. One trainer
    per workdir: a second one exits 2 before writing anything (``workdir_lock``)."""
    runtime.setup_logging()
    runtime.init_distributed(coordinator, num_processes, process_id)
    return errors.run_cli(functools.partial(_train, config, workdir, source, command,
                                            take_over_lock),
                          kept="the last complete checkpoint is kept")


def _train(config, workdir: str, source, command, take_over_lock: bool) -> None:
    import jax

    from linkbert_jax.checkpoint import checkpoints
    from linkbert_jax.infra import workdir_lock
    from linkbert_jax.pretrain import trainer
    with workdir_lock.lock_run(workdir, take_over=take_over_lock):
        if command and jax.process_index() == 0:
            checkpoints.record_command(workdir, command)
        trainer.train_and_evaluate(config, workdir, source)


def main(argv) -> int:
    f = define_flags()
    return run(f.config.value, f.workdir.value, coordinator=f.coordinator.value,
               num_processes=f.num_processes.value, process_id=f.process_id.value,
               command=sys.orig_argv, take_over_lock=f.take_over.value)


def cli() -> None:
    """The entry point (``python -m linkbert_jax.main``, console script ``linkbert-train``)."""
    runtime.setup_environment()  # huge pages (re-executes once), TF off accelerators
    from linkbert_jax import config_defaults  # imports JAX: after any re-execution
    define_flags()
    runtime.run_absl(main, config_defaults.with_config_files(sys.argv))


if __name__ == "__main__":
    cli()
