r"""The LinkBERT paper's ablations, one arm per row, at the paper's scale:
``--config ablations:ARM``.

==============  ===========================  =======  =========  ==========================
arm             row                          config   objective  its data (builder flags)
==============  ===========================  =======  =========  ==========================
linkbert        Table 5, LinkBERT-tiny       tiny     drp        (the defaults: hyperlinks,
                                                                 1/in-degree sampling)
no_diversity    Table 5, no diversity        tiny     drp        --link_sampling uniform
tfidf           Table 5, TF-IDF links        tiny     drp        --link_source tfidf
                                                                 --link_k 5
random          Table 5, random links        tiny     drp        --link_source random
                                                                 --link_k 5
nsp             (BERT's NSP head, tiny)      tiny     nsp        --relation_probs 1/2,1/2,0
no_drp          Table 6, no DRP (MLM only)   base     mlm        (LinkBERT-base's data)
==============  ===========================  =======  =========  ==========================

An arm is its base config (``tiny``: L2 H128, 10k steps of 2048 x 512 at 5e-3; ``base``:
BERT-base-cased continued 40k steps, 3e-4) with ``objective`` and ``data_options`` set;
nothing else differs, so arms of one table train with equal compute. Each arm's data is
built with its own flags, and the run checks the data's manifest against
``data_options`` at start (an arm on another arm's data is a one-line error)::

    python -m linkbert_jax.data.build --input $CORPUS --output_dir $DATA/tfidf \
        --tokenizer $TOKENIZER --link_source tfidf --link_k 5
    python -m linkbert_jax.main --config ablations:tfidf --workdir $WORKDIR/tfidf \
        --config.data_dir=$DATA/tfidf
    python -m linkbert_jax.main --config ablations:no_drp --workdir $WORKDIR/no_drp \
        --config.data_dir=$DATA/linkbert --config.init_from_hf=$BERT_BASE_CASED_DIR

Ahead-of-time check on each arm's slice (docs/aot.md): the tiny arms on ``v4-8``, no_drp
on base's ``v4-64``::

    python -m linkbert_jax.aot --config ablations:tfidf --topology v4-8

``apply(config, arm)`` sets an arm on any config (smaller runs of the same comparison).
This module is the one owner of the arms: ``python -m linkbert_jax.ablate`` (which runs
a set of them end to end, docs/ablations.md) takes each arm's builder flags, objective
and data options from here.
"""
from linkbert_jax import config_defaults

# LinkBERT's own data: hyperlinks, linked documents drawn in proportion to 1/in-degree.
LINKBERT_DATA = {"link_source": "hyperlinks", "link_sampling": "inverse_in_degree"}
# arm: (packaged config, objective, its data options where they differ from LinkBERT's)
ARMS = {
    "linkbert": ("tiny", "drp", {}),
    "no_diversity": ("tiny", "drp", {"link_sampling": "uniform"}),
    "tfidf": ("tiny", "drp", {"link_source": "tfidf", "link_k": 5}),
    "random": ("tiny", "drp", {"link_source": "random", "link_k": 5}),
    "nsp": ("tiny", "nsp", {}),
    "no_drp": ("base", "mlm", {}),
}
# The pair mix of an objective's data (builder --relation_probs); DRP's is the default.
RELATION_PROBS = {"nsp": "1/2,1/2,0"}
# The slice each size is checked on ahead of time (tools/aot_table.py --ablations): base's
# default slice, and the smallest TPU host for tiny (2048 x 512 fits with 76% to spare).
SLICES = {"tiny": "v4-8", "base": "v4-64"}


def arm_spec(arm: str) -> tuple:
    if arm not in ARMS:
        raise ValueError(f"unknown ablation arm {arm!r}; one of {', '.join(ARMS)} "
                         f"(--config ablations:ARM)")
    return ARMS[arm]


def slice_of(arm: str) -> str:
    """The TPU slice ``arm`` is AOT-checked on (its base config's)."""
    return SLICES[arm_spec(arm)[0]]


def data_options(arm: str) -> dict:
    """The builder options ``arm``'s data must have been built with."""
    return {**LINKBERT_DATA, **arm_spec(arm)[2]}


def build_flags(arm: str) -> list:
    """The builder flags (``python -m linkbert_jax.data.build``) of ``arm``'s data."""
    flags = [f"--{k}={v}" for k, v in sorted(arm_spec(arm)[2].items())]
    probs = RELATION_PROBS.get(arm_spec(arm)[1])
    return flags + ([f"--relation_probs={probs}"] if probs else [])


def apply(config, arm: str):
    """``config`` with ``arm``'s objective and data options (in place; returned)."""
    _, objective, _ = arm_spec(arm)
    config.objective = objective
    for key, value in data_options(arm).items():
        config.data_options[key] = value
    return config


def get_config(arm: str = "linkbert"):
    return apply(config_defaults.load_config_file(arm_spec(arm)[0]), arm)
