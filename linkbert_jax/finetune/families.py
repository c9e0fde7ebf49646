"""The task families, one record each: the task that implements it, what the
best-on-dev selection maximises, and the default sequence length. The config, the
task loader and the tests read it here; the transformers class a family exports to
is its head's (``heads``: ``hf_architecture``)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Family:
    task: str  # "module:Class" of its ``tasks.Task`` (imported on use)
    metric: str  # the dev metric the best checkpoint maximises
    seq_length: int  # the default max_seq_length


_F = "linkbert_jax.finetune."
FAMILIES = {
    "seqcls": Family(_F + "seqcls:SingleLabel", "accuracy", 128),
    "multilabel": Family(_F + "seqcls:MultiLabel", "micro_f1", 128),
    "regression": Family(_F + "seqcls:Regression", "pearson", 128),
    "tokcls": Family(_F + "tokcls:TokenClassification", "f1", 128),
    "qa": Family(_F + "qa:ExtractiveQA", "f1", 384),
    "mc": Family(_F + "choice:MultipleChoice", "accuracy", 128),
}
