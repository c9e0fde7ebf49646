r"""LinkBERT-large: continue from BERT-large-cased (vocabulary 28,996).

Peak LR 2e-4, 40k steps, 5k warmup, 2048 x 512, AdamW (0.9, 0.98), bf16.

Default slice: **TPU v4-128** (64 chips, 32 sequences per chip). These defaults (data
parallel, 4 microbatches, scanned layers) fit it with 29% of HBM to spare as the compiler
reports it (``python -m linkbert_jax.aot --config configs/large.py --topology v4-128``;
docs/aot.md).

Launch (every host of a pod slice runs the same command)::

    python -m linkbert_jax.main --config large --workdir $WORKDIR \
        --config.data_dir=$TFRECORD_DIR \
        --config.init_from_hf=$BERT_LARGE_CASED_DIR
"""
from linkbert_jax import config_defaults


def get_config():
    c = config_defaults.get_config(
        "large",
        learning_rate=2e-4, num_train_steps=40_000, warmup_steps=5_000,
        global_batch_size=2048, seq_length=512,
        microbatches=4,  # 32 sequences per v4 chip: 53 GiB at once, 31.2 in 2 pieces
        # A local Hugging Face directory of bert-large-cased (override with its path).
        init_from_hf="bert-large-cased",
    )
    c.model.scan_layers = True  # one compiled layer: compile time independent of depth
    return c
