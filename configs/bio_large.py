r"""BioLinkBERT-large from scratch (uncased PubMed vocabulary of 28,895).

Peak LR 4e-4, 62.5k steps, 20% warmup, 8192 x 512, AdamW (0.9, 0.98), bf16.

Launch (every host of a pod slice runs the same command)::

    python -m linkbert_jax.main --config configs/bio_large.py --workdir $WORKDIR \
        --config.data_dir=$TFRECORD_DIR \
        --config.mesh.data=1 --config.mesh.fsdp=-1
"""
from linkbert_jax import config_defaults


def get_config():
    return config_defaults.get_config(
        "bio_large",
        learning_rate=4e-4, num_train_steps=62_500, warmup_fraction=0.20,
        global_batch_size=8192, seq_length=512,
    )
