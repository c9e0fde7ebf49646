r"""MRQA extractive QA tasks with LinkBERT's fine-tuning hyperparameters.

Facts from LinkBERT's run scripts (github.com/michiyasunaga/LinkBERT, commit 6b60e0f):
``src/run_examples_mrqa_linkbert-base.sh`` (base) and
``src/run_examples_mrqa_linkbert-large.sh`` (``,large``): max_seq_length 384,
doc_stride 128, evaluation every 1,000 steps; batch = per-device batch x gradient
accumulation (base: 12 x 2, SQuAD 12 x 1; large: 16 x 1); fp16 there, float32 here.

    python -m linkbert_jax.finetune --config finetune/mrqa:squad \
        --init /models/LinkBERT-base --train_file data/qa/squad_hf/train.json \
        --validation_file data/qa/squad_hf/dev.json --workdir ft/squad --seeds 1,2,3
"""
from linkbert_jax.finetune.config import from_table

# task: (epochs, batch) of the base script, then of the large one
RUNS = {
    "hotpotqa": ((4, 24), (4, 16)),
    "naturalqa": ((4, 24), (4, 16)),
    "triviaqa": ((4, 24), (4, 16)),
    "squad": ((2, 12), (2, 16)),
    "newsqa": ((4, 24), (2, 16)),
    "searchqa": ((1, 24), (2, 16)),
}
BASE = {t: ("qa", "f1", 3e-5, e, 384, b, 0, {"eval_every_steps": 1000})
        for t, ((e, b), _) in RUNS.items()}
LARGE = {t: ("qa", "f1", 2e-5, e, 384, b, 0, {"eval_every_steps": 1000})
         for t, (_, (e, b)) in RUNS.items()}


def get_config(arg: str = "squad"):
    return from_table({"base": BASE, "large": LARGE}, arg)
