r"""LinkBERT-base: continue from BERT-base-cased (vocabulary 28,996).

Peak LR 3e-4, 40k steps, 5k warmup, 2048 x 512, AdamW (0.9, 0.98), bf16.

Default slice: **TPU v4-64** (32 chips, 64 sequences per chip). These defaults (data
parallel, 2 microbatches, scanned layers) fit it with 28% of HBM to spare as the compiler
reports it (``python -m linkbert_jax.aot --config configs/base.py --topology v4-64``;
docs/aot.md).

Launch (every host of a pod slice runs the same command)::

    python -m linkbert_jax.main --config base --workdir $WORKDIR \
        --config.data_dir=$TFRECORD_DIR \
        --config.init_from_hf=$BERT_BASE_CASED_DIR
"""
from linkbert_jax import config_defaults


def get_config():
    c = config_defaults.get_config(
        "base",
        learning_rate=3e-4, num_train_steps=40_000, warmup_steps=5_000,
        global_batch_size=2048, seq_length=512,
        microbatches=2,  # 64 sequences per v4 chip at once need 38 of 31 GiB
        # A local Hugging Face directory of bert-base-cased (override with its path).
        init_from_hf="bert-base-cased",
    )
    c.model.scan_layers = True  # one compiled layer: compile time independent of depth
    return c
