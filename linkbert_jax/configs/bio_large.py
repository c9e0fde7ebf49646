r"""BioLinkBERT-large from scratch (uncased PubMed vocabulary of 28,895).

Peak LR 4e-4, 62.5k steps, 20% warmup, 8192 x 512, AdamW (0.9, 0.98), bf16.

Default slice: **TPU v5p-128** (64 chips, 128 sequences per chip). These defaults (data
parallel, 4 microbatches, scanned layers) fit it with 38% of HBM to spare as the compiler
reports it (``python -m linkbert_jax.aot --config bio_large --topology
v5p-128``; docs/aot.md).

Launch (every host of a pod slice runs the same command)::

    python -m linkbert_jax.main --config bio_large --workdir $WORKDIR \
        --config.data_dir=$TFRECORD_DIR
"""
from linkbert_jax import config_defaults


def get_config():
    c = config_defaults.get_config(
        "bio_large",
        learning_rate=4e-4, num_train_steps=62_500, warmup_fraction=0.20,
        global_batch_size=8192, seq_length=512,
        microbatches=4,  # 128 sequences per v5p chip: 104 of 96 GiB in 2 pieces
    )
    c.model.scan_layers = True  # one compiled layer: compile time independent of depth
    return c
