"""The package's layout is its architecture (docs/layout.md): a few core modules at the
top, one concern per sub-package, floors that import only downward, no cycles, and the
old top-level module names still importable as aliases of the moved modules."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

from helpers import REPO
from linkbert_jax import _moved

PACKAGE = os.path.join(REPO, "linkbert_jax")
# Lowest first: a module may import its own floor and the floors below, never above.
FLOORS = (
    ("errors", "relations", "_moved"),
    ("model", "objectives", "sharding", "optimizer", "architectures", "readout", "ops"),
    ("data",),
    ("config_defaults", "configs"),  # the pretraining configs (configs.NAME)
    ("infra",),
    ("checkpoint",),
    ("hf",),
    ("pretrain",),
    ("finetune", "configs.finetune"),  # the fine-tuning configs
    ("aot",),
    ("ablate",),
    ("main", "demo"),
)


def _modules() -> dict:
    """``{dotted name: path}`` of every module of the package."""
    out = {}
    for root, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                mod = os.path.relpath(path[:-3], REPO).replace(os.sep, ".")
                out[mod.removesuffix(".__init__")] = path
    return out


def _imports(path: str, mods: dict) -> set:
    """The package's modules that ``path`` imports, at any depth of its code."""
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("linkbert_jax"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in mods else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("linkbert_jax."))
    return out


def _floor(mod: str) -> int:
    """The floor of the longest entry of FLOORS that ``mod`` (under linkbert_jax) is or is
    in."""
    name = mod.removeprefix("linkbert_jax.")
    found = [(len(entry), i) for i, floor in enumerate(FLOORS) for entry in floor
             if name == entry or name.startswith(entry + ".")]
    assert found, f"{mod} has no floor: add it to FLOORS (and docs/layout.md)"
    return max(found)[1]


def _graph() -> dict:
    mods = _modules()
    return {m: _imports(p, mods) - {m} for m, p in mods.items() if m != "linkbert_jax"}


def test_the_top_level_holds_at_most_12_modules():
    top = sorted(n for n in os.listdir(PACKAGE) if n.endswith(".py") and n != "__init__.py")
    assert len(top) <= 12, top


def test_every_import_goes_down_or_sideways():
    up = [f"{m} (floor {_floor(m)}) imports {d} (floor {_floor(d)})"
          for m, deps in _graph().items() for d in deps if d != "linkbert_jax"
          if _floor(d) > _floor(m)]
    assert not up, "\n".join(up)


def test_no_import_cycles():
    graph = _graph()
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_renames_into_place_only_in_the_io_facade_and_the_checkpoint_package():
    """Every writer goes through ``data.files`` (``atomic_write``, ``rename``); orbax's
    step directories are the checkpoint package's own."""
    scripts = {f"{d}.{n[:-3]}": os.path.join(REPO, d, n) for d in ("bench", "tools")
               for n in os.listdir(os.path.join(REPO, d)) if n.endswith(".py")}
    found = [f"{os.path.relpath(p, REPO)}:{i}" for m, p in {**_modules(), **scripts}.items()
             if m != "linkbert_jax.data.files" and not m.startswith("linkbert_jax.checkpoint.")
             for i, line in enumerate(open(p), 1) if "os.replace(" in line
             or "os.rename(" in line]
    assert not found, found


# The users of a pretraining step: each builds it through the one recipe.
STEP_USERS = ("linkbert_jax/pretrain/trainer.py", "linkbert_jax/aot/analysis.py",
              "linkbert_jax/ablate/stages.py", "bench/compile.py", "bench/train_step.py",
              "bench/checkpoint_verify.py")


def test_every_pretraining_step_is_built_by_the_one_recipe():
    """``pretrain/recipe.py`` alone assembles a step (``compile_steps``, the state
    shardings, the optimizer, the mesh checks); its users call ``recipe.build``."""
    assembling = ("compile_steps(", "state_shardings(", "make_optimizer(",
                  "check_mesh(", "flops_per_sequence(")
    paths = [p for p in _modules().values()] + [os.path.join(REPO, "bench", n)
                                                 for n in os.listdir(os.path.join(REPO, "bench"))]
    found = [f"{os.path.relpath(p, REPO)}:{i}: {line.strip()}" for p in paths
             if p.endswith(".py") and os.path.relpath(p, REPO) not in (
                 "linkbert_jax/pretrain/recipe.py", "linkbert_jax/pretrain/steps.py",
                 "linkbert_jax/optimizer.py")  # the optimizer's own module uses it
             and "finetune" not in p
             for i, line in enumerate(open(p), 1)
             if any(a in line for a in assembling) and "def " not in line]
    assert not found, "\n".join(found)
    for rel in STEP_USERS:
        assert "recipe" in open(os.path.join(REPO, rel)).read(), rel


def test_the_manifest_names_moved_out_of_features_still_answer_there():
    import warnings
    from linkbert_jax.data import features, manifests
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert features.read_manifest is manifests.read_manifest
    assert [w.category for w in caught] == [DeprecationWarning], caught
    try:
        features.no_such_name
    except AttributeError:
        pass
    else:
        raise AssertionError("features.__getattr__ answered an unknown name")


def test_old_module_names_are_the_moved_modules(tmp_path):
    """``linkbert_jax.convert`` is ``linkbert_jax.hf.convert`` (same object, with a
    DeprecationWarning), and ``python -m`` of an old name runs the new module."""
    code = ("import importlib, warnings\n"
            "warnings.simplefilter('error')\n"
            f"for old, pkg in {_moved.MOVED!r}.items():\n"
            "    new = importlib.import_module(f'linkbert_jax.{pkg}.{old}')\n"
            "    try:\n"
            "        importlib.import_module(f'linkbert_jax.{old}')\n"
            "    except DeprecationWarning:\n"
            "        pass\n"
            "    else:\n"
            "        raise SystemExit(f'{old}: no DeprecationWarning')\n"
            "    warnings.simplefilter('ignore')\n"
            "    assert importlib.import_module(f'linkbert_jax.{old}') is new, old\n"
            "    warnings.simplefilter('error')\n"
            "print('ok', len(" + repr(_moved.MOVED) + "))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.startswith("ok"), p.stderr[-3000:]
    p = subprocess.run([sys.executable, "-m", "linkbert_jax.export", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "--workdir" in p.stdout, p.stderr[-3000:]
    moved = [m for m in _moved.MOVED if os.path.exists(os.path.join(PACKAGE, m + ".py"))]
    assert not moved, moved  # no file stands at an old path
