r"""LinkBERT-tiny (L2 H128) from scratch: the paper's ablation size.

Peak LR 5e-3, 10k steps, 5k warmup, 2048 x 512 (DESIGN.md section 4). A smoke run
on a CPU::

    python -m linkbert_jax.main --config tiny --workdir /tmp/tiny \
        --config.data_dir=$TFRECORD_DIR --config.num_train_steps=20 \
        --config.global_batch_size=8 --config.checkpoint_every_steps=10

Launch (every host of a pod slice runs the same command)::

    python -m linkbert_jax.main --config tiny --workdir $WORKDIR \
        --config.data_dir=$TFRECORD_DIR
"""
from linkbert_jax import config_defaults


def get_config():
    c = config_defaults.get_config(
        "tiny",
        learning_rate=5e-3, num_train_steps=10_000, warmup_steps=5_000,
        global_batch_size=2048, seq_length=512,
    )
    c.model.vocab_size = 0  # from scratch: the data's vocabulary (manifest vocab_size)
    return c
