"""What an ablation arm's config asks of its data, checked before anything compiles.

An arm is a config: its ``objective`` (``linkbert_jax.objectives``) and its
``data_options``, the builder options the data must have been built with (the manifest's
``"options"``, which the builder records from its flags). A mismatch is a one-line
:class:`ConfigError` naming both sides: the table of an ablation means nothing when an
arm trained on another arm's data.
"""
from __future__ import annotations

import logging
import os

from linkbert_jax import objectives
from linkbert_jax.data import features
from linkbert_jax.data import manifests
from linkbert_jax.errors import ConfigError

log = logging.getLogger("linkbert_jax")

# What data built before these builder options existed was built with (a manifest that
# does not record them): hyperlinks, sampled in proportion to 1/in-degree.
PRE_OPTION_DEFAULTS = {"link_source": "hyperlinks", "link_k": 5,
                       "link_sampling": "inverse_in_degree"}
# The options the run prints: the ablation switches of the builder.
SWITCHES = tuple(PRE_OPTION_DEFAULTS)
NSP_BUILD = "--relation_probs 1/2,1/2,0"


def objective(config) -> str:
    """``config.objective`` (a config without the key is LinkBERT's DRP)."""
    name = config.get("objective", objectives.DEFAULT_OBJECTIVE)
    try:
        objectives.head_relations(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return name


def data_option(manifest: dict, key: str):
    """The builder option ``key`` the data was built with (``None``: not recorded)."""
    recorded = manifest.get("options") or {}
    return recorded[key] if key in recorded else PRE_OPTION_DEFAULTS.get(key)


def _same(have, want) -> bool:
    return have == want or str(have) == str(want)


def wanted_options(config) -> dict:
    """``config.data_options`` without the unset (None: any) items."""
    return {k: v for k, v in dict(config.get("data_options") or {}).items() if v is not None}


def check_data_options(config, manifest: dict, where: str) -> None:
    """Every set ``config.data_options`` item equals the data's (``where``: the manifest).
    A manifest without ``options`` was not written by the builder (a test's or the AOT
    check's stand-in): nothing to compare."""
    if "options" not in manifest:
        return
    for key, want in sorted(wanted_options(config).items()):
        have = data_option(manifest, key)
        if not _same(have, want):
            has = f"has {key} {have!r}" if have is not None else f"records no {key}"
            raise ConfigError(
                f"the data does not match the config: config.data_options.{key} is {want!r} "
                f"but {where} {has}; build the data with --{key} {want} or use this arm's "
                f"own data_dir")


def linked_counts(manifest: dict) -> dict:
    """Linked pairs per split in the manifest (only the splits it counts)."""
    out = {}
    for split, key in (("train", "relations"), ("eval", "relations_eval")):
        counts = manifest.get(key)
        if isinstance(counts, dict):
            out[split] = int(counts.get(features.RELATIONS[features.LINKED], 0))
    return out


def check_objective_data(name: str, manifest: dict, where: str) -> None:
    """NSP's 2-way head cannot take linked labels (an error); DRP without any linked
    pair learns only 2 of its 3 relations (a warning)."""
    linked = linked_counts(manifest)
    if name == "nsp" and any(linked.values()):
        raise ConfigError(
            f"objective nsp (BERT's 2-way contiguous/random) but {where} has linked pairs ("
            + ", ".join(f"{s} {n}" for s, n in linked.items())
            + f"); build its data with {NSP_BUILD}")
    if name == "drp" and linked and not any(linked.values()):
        log.warning("objective drp but %s has no linked pairs: the DRP head learns only "
                    "contiguous/random (for BERT's NSP set --config.objective=nsp)", where)


def check(config, manifest: dict) -> None:
    """The arm's objective and data options against the data (``trainer.validate``)."""
    where = os.path.join(config.get("data_dir") or ".", manifests.MANIFEST_NAME)
    check_objective_data(objective(config), manifest, where)
    check_data_options(config, manifest, where)


def describe(config, manifest: dict) -> str:
    """One line for the start of a run: the objective and the data's switches."""
    name = objective(config)
    rels = objectives.head_relations(name)
    head = f"{len(rels)}-way head: {', '.join(rels)}" if rels else "no relation head"
    wanted = wanted_options(config)
    data = (", ".join(f"{k} {data_option(manifest, k)}" for k in SWITCHES)
            if "options" in manifest else "options not recorded")
    return (f"objective {name} ({head}); data_options {wanted or 'any'}; "
            f"data built with {data}")
