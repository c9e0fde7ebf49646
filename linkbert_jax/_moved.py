"""Old module paths (before the sub-packages) as aliases of the new ones.

``import linkbert_jax.convert`` gives the module ``linkbert_jax.hf.convert`` itself (the
same object: patching one patches the other), with a ``DeprecationWarning``;
``python -m linkbert_jax.export`` runs the new module. No files stand at the old paths.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

MOVED = {  # old name under linkbert_jax -> its sub-package
    **dict.fromkeys(("runtime", "hostmem", "preemption", "chips", "step_costs",
                     "metrics_log", "plots", "workdir_lock"), "infra"),
    **dict.fromkeys(("checkpoints", "checksums", "orbax_faults", "tree_diff",
                     "step_config"), "checkpoint"),
    **dict.fromkeys(("convert", "param_mapping", "hf_files", "hf_torch", "export",
                     "export_dir", "model_card", "trained_tokenizer", "vocabulary"), "hf"),
    **dict.fromkeys(("trainer", "steps", "evaluation", "input_pipeline", "masking",
                     "example_stream", "data_position", "run_paths", "resume_checks"),
                    "pretrain"),
    **dict.fromkeys(("samples", "arm_checks"), "data"),
}
_PREFIX = "linkbert_jax."


def new_name(old: str) -> str | None:
    """``linkbert_jax.hf.convert`` for ``linkbert_jax.convert``; None if not moved."""
    short = old[len(_PREFIX):] if old.startswith(_PREFIX) else None
    return f"{_PREFIX}{MOVED[short]}.{short}" if short in MOVED else None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        target_name = new_name(fullname)
        if target_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin=target_name)

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {spec.origin}; the old name will go",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(spec.origin)

    def exec_module(self, module):  # the new module ran already
        pass

    def get_code(self, fullname):  # ``python -m OLD``: run the new module's code
        target = new_name(fullname)
        return importlib.util.find_spec(target).loader.get_code(target)

    def is_package(self, fullname):
        return False


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())  # before any finder of an old copy
