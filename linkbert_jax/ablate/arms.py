"""The arms of the paper's ablations and the commands each one runs.

| arm | links (builder) | linked-document sampling | objective | paper |
|---|---|---|---|---|
| ``linkbert`` | hyperlinks | ∝ 1/in-degree | DRP (3-way) | Table 5/6 LinkBERT |
| ``no_diversity`` | hyperlinks | uniform | DRP | Table 5 "w/o diversity" |
| ``tfidf`` | TF-IDF top-k | ∝ 1/in-degree | DRP | Table 5 "TF-IDF links" |
| ``random`` | k random documents | ∝ 1/in-degree | DRP | Table 5 "random links" |
| ``no_drp`` | hyperlinks | ∝ 1/in-degree | MLM only | Table 6 "w/o DRP" |

Arms whose builder options agree share one build (``linkbert`` and ``no_drp``). Each
(arm, seed) pretrains from a generated config file (``RUN/config.py``) that loads the
base config and sets ``data_dir``, ``seed``, ``objective`` and ``data_options`` (the
trainer checks the last against the build's manifest), so the file records the arm.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arm:
    name: str
    build: dict = field(default_factory=dict)  # builder options (--link_source ...)
    objective: str = "drp"

    def build_key(self) -> str:
        """The name of its build directory (arms with the same options share it)."""
        return "-".join(str(self.build[k]) for k in BUILD_KEYS if k in self.build)


BUILD_KEYS = ("link_source", "link_sampling")
_HYPER = {"link_source": "hyperlinks", "link_sampling": "inverse_in_degree"}
ARMS = {a.name: a for a in (
    Arm("linkbert", dict(_HYPER)),
    Arm("no_diversity", dict(_HYPER, link_sampling="uniform")),
    Arm("tfidf", dict(_HYPER, link_source="tfidf")),
    Arm("random", dict(_HYPER, link_source="random")),
    Arm("no_drp", dict(_HYPER), objective="mlm"),
)}


def parse_arms(text: str) -> list[Arm]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARMS]
    if unknown or not names:
        raise ValueError(f"--arms: unknown arm {', '.join(unknown) or '(none)'}; "
                         f"expected some of {', '.join(ARMS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--arms names an arm twice: {text}")
    return [ARMS[n] for n in names]


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be integers separated by commas, got {text!r}") \
            from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs distinct integers, got {text!r}")
    return seeds


def build_argv(arm: Arm, common: list[str], out_dir: str) -> list[str]:
    """The builder command of ``arm`` (``common``: input, format, tokenizer, lengths...)."""
    flags = [f"--{k}={v}" for k, v in sorted(arm.build.items())]
    return [sys.executable, "-m", "linkbert_jax.data.build", *common, *flags,
            "--output_dir", out_dir, "--no_progress"]


def run_config(base: str, arm: Arm, seed: int, data_dir: str, overrides: dict) -> str:
    """The text of the generated pretraining config file of ``(arm, seed)``."""
    sets = {"data_dir": data_dir, "seed": seed, "objective": arm.objective,
            "data_options": dict(arm.build), **overrides}
    lines = [f'"""linkbert_jax.ablate: arm {arm.name}, seed {seed} (generated)."""',
             "from linkbert_jax import config_defaults", "", "",
             "def get_config():",
             f"    c = config_defaults.load_config_file({base!r})"]
    for key, value in sets.items():
        *parents, leaf = key.split(".")
        node = "c" + "".join(f"[{p!r}]" for p in parents)
        lines.append(f"    {node}[{leaf!r}] = {value!r}")
    lines.append("    return c")
    return "\n".join(lines) + "\n"


def pretrain_argv(config_path: str, workdir: str) -> list[str]:
    return [sys.executable, "-m", "linkbert_jax.main", "--config", config_path,
            "--workdir", workdir]


def finetune_argv(init: str, train: str, dev: str, test: str | None, workdir: str,
                  seed: int, overrides: dict) -> list[str]:
    return [sys.executable, "-m", "linkbert_jax.finetune", "--task", "mc", "--init", init,
            "--train_file", train, "--validation_file", dev,
            *(["--test_file", test] if test else []), "--workdir", workdir,
            "--seeds", str(seed), *[f"--config.{k}={v}" for k, v in overrides.items()]]
