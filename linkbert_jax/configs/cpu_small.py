r"""A small CPU run: the tiny architecture, sequences of 128, batch 32; minutes on 2 cores.

fp32 (bf16 matmuls are slow on CPUs), short warmup, frequent logs and checkpoints.

Launch::

    python -m linkbert_jax.main --config cpu_small --workdir /tmp/linkbert_cpu \
        --config.data_dir=$TFRECORD_DIR
"""
from linkbert_jax import config_defaults


def get_config():
    c = config_defaults.get_config(
        "tiny",
        learning_rate=1e-3, num_train_steps=400, warmup_steps=40,
        global_batch_size=32, seq_length=128,
        checkpoint_every_steps=100, log_every_steps=10,
        eval_every_steps=0, eval_batch_size=32, eval_max_batches=8,
    )
    c.model.vocab_size = 0  # from scratch: the data's vocabulary (manifest vocab_size)
    c.model.dtype = "float32"
    c.model.hidden_dropout_prob = 0.0
    c.model.attention_probs_dropout_prob = 0.0
    c.masking.max_predictions = 20
    return c
