"""Fine-tuning defaults for each task family (one place; the task tables in
``linkbert_jax/configs/finetune/*.py`` state
only the differences: the LinkBERT paper's per-task hyperparameters).

``get_config(task, **overrides)`` returns the full ``ml_collections.ConfigDict`` with every
key the fine-tuning loop reads. The optimizer keys are those of
``linkbert_jax.optimizer`` (``num_train_steps``, when 0, is resolved from the epochs at
run time);
their defaults are Hugging Face ``Trainer``'s, which LinkBERT's run scripts use (AdamW
0.9/0.999/1e-8, no weight decay, clip 1.0, linear decay, no warmup unless stated).
"""
from __future__ import annotations

import ml_collections

from linkbert_jax.config_defaults import LOGICAL_AXIS_RULES
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import packing
from linkbert_jax.finetune.families import FAMILIES



def get_config(task: str = "seqcls", **overrides) -> ml_collections.ConfigDict:
    if task not in FAMILIES:
        raise ConfigError(f"task must be one of {sorted(FAMILIES)}, got {task!r}")
    family = FAMILIES[task]
    c = ml_collections.ConfigDict()
    c.task = task
    # Numerics of the encoder (the architecture comes from --init).
    c.model = ml_collections.ConfigDict(dict(dtype="float32", remat="none", attention="xla"))
    c.random_init = False  # a baseline: --init's architecture and tokenizer, random weights
    c.classifier_dropout = -1.0  # < 0: the encoder's hidden_dropout_prob (as HF's None)

    # Data and tokenization.
    c.max_seq_length = family.seq_length
    c.doc_stride = 128  # qa: overlap of consecutive windows of a long context
    c.max_answer_length = 30  # qa: longest predicted span, in tokens
    c.n_best_size = 20  # qa: start/end candidates per window
    c.negative_label = ""  # seqcls: a label left out of micro P/R/F1 (relation extraction)
    c.multilabel_threshold = 0.0  # multilabel: a label is predicted when its logit > this
    c.length_buckets = 4  # batches cut to their longest row, rounded up to a multiple
    # of max_seq_length / length_buckets (and of 8): each step compiles for at most this
    # many lengths; 1: never cut
    c.group_by_length = False  # train batches of rows of similar length (HF's option)
    c.pack_examples = 32  # pooled heads (seqcls, multilabel, regression, mc): groups of
    # up to this many examples (those of a device and microbatch) packed into as few rows
    # as hold them, each example attending to its own tokens: the same logits with less
    # padding; 0: one example to a row, cut to length
    c.pack_shapes = packing.ROW_COUNTS  # a packed group of n sequences takes a multiple
    # of ceil(n / pack_shapes) rows: at most this many batch shapes to compile; fewer
    # compile sooner (short runs), more pad less

    # Optimization (Hugging Face Trainer's defaults unless a task config says otherwise).
    c.batch_size = 32  # global train batch (per device x accumulation x devices in HF)
    c.eval_batch_size = 64
    c.microbatches = 1
    c.num_train_epochs = 3.0
    c.num_train_steps = 0  # > 0: this many steps, num_train_epochs ignored; 0: resolved
    # from the epochs and the training split's size
    c.learning_rate = 5e-5
    c.warmup_steps = 0
    c.warmup_fraction = 0.0  # > 0: warmup = fraction of all steps (HF's warmup_ratio)
    c.end_learning_rate = 0.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.999
    c.adam_eps = 1e-8
    c.weight_decay = 0.0  # not on LayerNorm parameters and biases
    c.grad_clip_norm = 1.0

    # Evaluation, selection, logging.
    c.metric = family.metric  # the dev metric that selects the best checkpoint (higher is better)
    c.eval_every_steps = 0  # 0: at the end of every epoch
    c.log_every_steps = 20
    c.checkpoint_every_steps = 500  # and on SIGTERM/SIGINT and at the end (resumable)
    c.seed = 42  # HF Trainer's default seed

    # Parallelism: the pretraining mesh and logical rules.
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    c.logical_axis_rules = LOGICAL_AXIS_RULES
    c.update(overrides)
    return c


def from_table(tables: dict, arg: str) -> ml_collections.ConfigDict:
    """The config of a row of a task table (``linkbert_jax/configs/finetune/*.py``):
    ``tables`` maps ``base``/``large`` to ``{task: (family, metric, learning rate, epochs,
    max_seq_length, batch, warmup, {other keys})}``, warmup an int (steps) or a float (a
    fraction); ``arg`` is ``task`` or ``task,large``."""
    name, _, size = (arg or "").partition(",")
    rows = tables["large" if size == "large" else "base"]
    if name not in rows:
        raise ConfigError(f"unknown task {name!r}; one of {sorted(rows)} (add ',large' for "
                         f"the large model's hyperparameters)")
    family, metric, lr, epochs, length, batch, warmup, extra = rows[name]
    c = get_config(family, metric=metric, learning_rate=lr, num_train_epochs=float(epochs),
                   max_seq_length=length, batch_size=batch, **extra)
    if isinstance(warmup, float):
        c.warmup_fraction = warmup
    else:
        c.warmup_steps = warmup
    return c
