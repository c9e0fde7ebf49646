"""The driver's view of the arms. Each arm (its builder flags, objective and data
options) is defined once, in ``linkbert_jax.configs.ablations``; this module only names
the builds they need and parses the command line's lists.

Arms whose builder flags agree share one build (``linkbert`` and ``no_drp``). The
``linkbert`` build (the corpus's hyperlinks, sampled ∝ 1/in-degree) is the *common* one:
every arm's held-out MLM and DRP are measured on its eval split, and the link task is
made from it, so all arms are scored on the same pairs.
"""
from __future__ import annotations

from linkbert_jax import config_defaults
from linkbert_jax.configs import ablations
from linkbert_jax.errors import ConfigError

ARMS = tuple(ablations.ARMS)  # every arm, in the table's order
DEFAULT_ARMS = ("linkbert", "no_diversity", "tfidf", "random", "no_drp")
COMMON = "linkbert"  # the arm whose build holds the common eval split and the link task
_KEY_ORDER = ("link_source", "link_sampling", "link_k")


def build_key(arm: str) -> str:
    """The name of ``arm``'s build directory (equal builder flags, equal name)."""
    flags = ablations.build_flags(arm)
    if not flags:
        return "hyperlinks"
    opts = dict(f.lstrip("-").split("=", 1) for f in flags)
    keys = sorted(opts, key=lambda k: (_KEY_ORDER + (k,)).index(k))
    return "-".join(f"{k}_{opts[k]}".replace("/", "_").replace(",", "_") for k in keys)


COMMON_BUILD = build_key(COMMON)


def parse_arms(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ablations.ARMS]
    if unknown or not names:
        raise ConfigError(f"--arms: unknown arm {', '.join(unknown) or '(none)'}; "
                          f"expected some of {', '.join(ARMS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--arms names an arm twice: {text}")
    return names


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds must be integers separated by commas, got {text!r}") \
            from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds needs distinct integers, got {text!r}")
    return seeds


def arm_config(base: str, arm: str, seed: int, data_dir: str, overrides: dict):
    """The pretraining config of ``(arm, seed)``: the config ``base`` (a packaged name or
    a file) with ``overrides`` (``{"a.b": value}``), then the arm's objective and data
    options (``ablations.apply``), its data and seed. The run's own eval is off: the
    driver evaluates every arm on the common split."""
    c = ablations.apply(config_defaults.load_config_file(base, overrides), arm)
    c.data_dir, c.seed = data_dir, seed
    c.eval_every_steps, c.eval_at_end = 0, False
    return c
