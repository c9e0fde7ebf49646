r"""Compile a config's train and eval steps ahead of time for a TPU slice (or this host)
and say whether they fit, what they cost and what to change::

    python -m linkbert_jax.aot --config base --topology v4-64 \
        [--config.microbatches=2 ...] [--suggest] [--json out.json]

Exit status: 0 when the train and eval steps fit the target's memory, 1 when they do not
(the report lists what to try; ``--suggest`` compiles those options until one fits with
10% headroom), 2 for a bad config or topology (one line). Details: docs/aot.md.
"""
from __future__ import annotations

import functools
import sys
import types

from absl import flags
from ml_collections import config_flags


@functools.cache
def define_flags() -> types.SimpleNamespace:
    """The command's absl flags, defined when it starts (``console``), not at import: any
    module of the package imports next to any other (training's ``--config`` too)."""
    f = types.SimpleNamespace(
        config=config_flags.DEFINE_config_file("config", None, "Training config file.",
                                               lock_config=False),
        topology=flags.DEFINE_string(
            "topology", None, "v4-64, v5p-128, v5litepod-64, v6e-64, a chip grid such as "
            "v4:2x4x4 or v5e:8x8, or cpu / cpu:N (this host)."),
        suggest=flags.DEFINE_bool("suggest", False, "When it does not fit, compile the "
                                  "options in order of cost and report the first that fits."),
        json=flags.DEFINE_string("json", None, "Also write the figures to this JSON file."))
    flags.mark_flags_as_required(["config", "topology"])
    return f


def main(argv=None) -> int:
    from linkbert_jax.infra import runtime
    from linkbert_jax.aot import command
    from linkbert_jax.errors import run_cli
    f = define_flags()
    runtime.setup_logging()
    return run_cli(lambda: command.run(f.config.value, f.topology.value,
                                       suggest=f.suggest.value, json_path=f.json.value))


def cli() -> None:
    """The entry point (``python -m linkbert_jax.aot``, console script ``linkbert-aot``);
    ``--config`` takes a packaged config name or a path."""
    from linkbert_jax.infra import runtime
    from linkbert_jax.config_defaults import with_config_files
    runtime.setup_environment(huge_pages=False, tensorflow=False)  # compiles only
    define_flags()
    runtime.run_absl(main, with_config_files(sys.argv))


if __name__ == "__main__":
    cli()
