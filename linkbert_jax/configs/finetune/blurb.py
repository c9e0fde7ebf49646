r"""BLURB (biomedical) tasks with BioLinkBERT's fine-tuning hyperparameters.

Facts from LinkBERT's run scripts (github.com/michiyasunaga/LinkBERT, commit 6b60e0f):
``src/run_examples_blurb_biolinkbert-base.sh`` (base) and
``src/run_examples_blurb_biolinkbert-large.sh`` (``,large``). Batch = per-device batch x
gradient accumulation as the scripts give them (one GPU); fp16 there, float32 here.
Relation extraction (chemprot, DDI, GAD) is scored there by ``PRF1``: micro P/R/F1 with
label id 0 as the negative class; set ``--config.negative_label=<that label>`` to match.
HoC is scored there per document (``utils_hoc.py``); here by micro F1 over labels.

    python -m linkbert_jax.finetune --config finetune/blurb:chemprot \
        --init /models/BioLinkBERT-base --train_file data/seqcls/chemprot_hf/train.json \
        --validation_file data/seqcls/chemprot_hf/dev.json \
        --test_file data/seqcls/chemprot_hf/test.json --workdir ft/chemprot --seeds 1,2,3
"""
from linkbert_jax.finetune.config import from_table

# task: (family, metric, learning rate, epochs, max_seq_length, batch, warmup, extra)
# warmup: int = steps (--warmup_steps), float = fraction (--warmup_ratio), 0 = none.
BASE = {
    "pubmedqa": ("seqcls", "accuracy", 2e-5, 30, 512, 16, 100, {}),
    "bioasq": ("seqcls", "accuracy", 2e-5, 20, 512, 16, 100, {}),
    "biosses": ("regression", "pearson", 1e-5, 30, 512, 16, 0, {"seed": 5}),
    "hoc": ("multilabel", "micro_f1", 4e-5, 40, 512, 32, 0, {}),
    "chemprot": ("seqcls", "micro_f1", 3e-5, 10, 256, 32, 0, {}),
    "ddi": ("seqcls", "micro_f1", 2e-5, 5, 256, 32, 0, {}),
    "gad": ("seqcls", "micro_f1", 3e-5, 10, 256, 32, 0, {}),
    "ebmnlp": ("tokcls", "f1", 5e-5, 1, 512, 32, 0, {}),
    "jnlpba": ("tokcls", "f1", 1e-5, 5, 512, 16, 0.1, {}),
    "ncbi_disease": ("tokcls", "f1", 5e-5, 20, 512, 32, 0.1, {}),
    "bc2gm": ("tokcls", "f1", 6e-5, 50, 512, 32, 0.1, {}),
    "bc5cdr_disease": ("tokcls", "f1", 5e-5, 8, 512, 16, 0.1, {}),
    "bc5cdr_chem": ("tokcls", "f1", 5e-5, 20, 512, 32, 0.1, {}),
}
_ADAM = {"weight_decay": 0.01, "adam_b2": 0.98, "adam_eps": 1e-6}
LARGE = {
    "pubmedqa": ("seqcls", "accuracy", 3e-5, 23, 512, 32, 0.5, {}),
    "bioasq": ("seqcls", "accuracy", 3e-5, 30, 512, 32, 0.5, {}),
    "biosses": ("regression", "pearson", 3e-5, 100, 512, 32, 0.5, _ADAM),
    "hoc": ("multilabel", "micro_f1", 3e-5, 20, 512, 32, 0.5, {}),
    "chemprot": ("seqcls", "micro_f1", 2e-5, 4, 256, 16, 0.5, {}),
    "ddi": ("seqcls", "micro_f1", 2e-5, 3, 256, 16, 0.5, {}),
    "gad": ("seqcls", "micro_f1", 2e-5, 5, 256, 16, 0.5, {}),
    "ebmnlp": ("tokcls", "f1", 2e-5, 1, 512, 16, 0.5, {}),
    "jnlpba": ("tokcls", "f1", 3e-5, 4, 512, 16, 0.5, dict(_ADAM, seed=3)),
    "ncbi_disease": ("tokcls", "f1", 2e-5, 10, 512, 16, 0.5, {}),
    "bc2gm": ("tokcls", "f1", 2e-5, 30, 512, 16, 0.5, {}),
    "bc5cdr_disease": ("tokcls", "f1", 3e-5, 20, 512, 32, 0.5, {}),
    "bc5cdr_chem": ("tokcls", "f1", 2e-5, 8, 512, 16, 0.5, {}),
}


def get_config(arg: str = "chemprot"):
    return from_table({"base": BASE, "large": LARGE}, arg)
