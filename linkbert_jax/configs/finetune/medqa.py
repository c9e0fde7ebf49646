r"""MedQA-USMLE (4-way multiple choice) with BioLinkBERT's fine-tuning hyperparameters.

Facts from LinkBERT's run scripts (github.com/michiyasunaga/LinkBERT, commit 6b60e0f):
``src/run_examples_medqa_biolinkbert-base.sh`` (base: batch 4 x 8 accumulation, 2e-5,
100 warmup steps, 2 epochs) and ``src/run_examples_medqa_biolinkbert-large.sh``
(``,large``: batch 2 x 32, 3e-5, 500 warmup steps, 6 epochs, AdamW 0.9/0.98/1e-6, weight
decay 0.01, evaluation every 100 steps); max_seq_length 512; fp16 there, float32 here.
The large script then evaluates the MedQA model on MMLU professional medicine
(``--init`` the exported ``model/`` directory of this run, zero epochs).

    python -m linkbert_jax.finetune --config finetune/medqa:medqa_usmle \
        --init /models/BioLinkBERT-base --train_file data/mc/medqa_usmle_hf/train.json \
        --validation_file data/mc/medqa_usmle_hf/dev.json \
        --test_file data/mc/medqa_usmle_hf/test.json --workdir ft/medqa --seeds 1,2,3
"""
from linkbert_jax.finetune.config import from_table

BASE = {"medqa_usmle": ("mc", "accuracy", 2e-5, 2, 512, 32, 100, {"microbatches": 8})}
LARGE = {"medqa_usmle": ("mc", "accuracy", 3e-5, 6, 512, 64, 500, {
    "microbatches": 32, "weight_decay": 0.01, "adam_b2": 0.98, "adam_eps": 1e-6,
    "eval_every_steps": 100})}


def get_config(arg: str = "medqa_usmle"):
    return from_table({"base": BASE, "large": LARGE}, arg)
