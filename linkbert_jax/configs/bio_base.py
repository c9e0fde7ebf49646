r"""BioLinkBERT-base from scratch (uncased PubMed vocabulary of 28,895).

Peak LR 6e-4, 62.5k steps, 10% warmup, 8192 x 512, AdamW (0.9, 0.98), bf16.

Default slice: **TPU v5p-64** (32 chips, 256 sequences per chip). These defaults (data
parallel, 2 microbatches, scanned layers) fit it with 18% of HBM to spare as the compiler
reports it (``python -m linkbert_jax.aot --config configs/bio_base.py --topology
v5p-64``; docs/aot.md).

Launch (every host of a pod slice runs the same command)::

    python -m linkbert_jax.main --config bio_base --workdir $WORKDIR \
        --config.data_dir=$TFRECORD_DIR
"""
from linkbert_jax import config_defaults


def get_config():
    c = config_defaults.get_config(
        "bio_base",
        learning_rate=6e-4, num_train_steps=62_500, warmup_fraction=0.10,
        global_batch_size=8192, seq_length=512,
        microbatches=2,  # 256 sequences per v5p chip at once need 149 of 96 GiB
    )
    c.model.scan_layers = True  # one compiled layer: compile time independent of depth
    return c
