r"""MRQA extractive QA tasks with LinkBERT's fine-tuning hyperparameters.

Facts from LinkBERT's run scripts (github.com/michiyasunaga/LinkBERT, commit 6b60e0f):
``src/run_examples_mrqa_linkbert-base.sh`` (base) and
``src/run_examples_mrqa_linkbert-large.sh`` (``,large``): max_seq_length 384,
doc_stride 128, evaluation every 1,000 steps; batch = per-device batch x gradient
accumulation (base: 12 x 2, SQuAD 12 x 1; large: 16 x 1); fp16 there, float32 here.

    python -m linkbert_jax.finetune --config configs/finetune/mrqa.py:squad \
        --init /models/LinkBERT-base --train_file data/qa/squad_hf/train.json \
        --validation_file data/qa/squad_hf/dev.json --workdir ft/squad --seeds 1,2,3
"""
from linkbert_jax.finetune.config import from_table

_QA = ("qa", "f1")
BASE = {
    "hotpotqa": _QA + (3e-5, 4, 384, 24, 0, {"eval_every_steps": 1000}),
    "naturalqa": _QA + (3e-5, 4, 384, 24, 0, {"eval_every_steps": 1000}),
    "triviaqa": _QA + (3e-5, 4, 384, 24, 0, {"eval_every_steps": 1000}),
    "squad": _QA + (3e-5, 2, 384, 12, 0, {"eval_every_steps": 1000}),
    "newsqa": _QA + (3e-5, 4, 384, 24, 0, {"eval_every_steps": 1000}),
    "searchqa": _QA + (3e-5, 1, 384, 24, 0, {"eval_every_steps": 1000}),
}
LARGE = {
    "hotpotqa": _QA + (2e-5, 4, 384, 16, 0, {"eval_every_steps": 1000}),
    "naturalqa": _QA + (2e-5, 4, 384, 16, 0, {"eval_every_steps": 1000}),
    "triviaqa": _QA + (2e-5, 4, 384, 16, 0, {"eval_every_steps": 1000}),
    "squad": _QA + (2e-5, 2, 384, 16, 0, {"eval_every_steps": 1000}),
    "newsqa": _QA + (2e-5, 2, 384, 16, 0, {"eval_every_steps": 1000}),
    "searchqa": _QA + (2e-5, 2, 384, 16, 0, {"eval_every_steps": 1000}),
}


def get_config(arg: str = "squad"):
    return from_table({"base": BASE, "large": LARGE}, arg)
