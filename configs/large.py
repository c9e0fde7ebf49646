r"""LinkBERT-large: continue from BERT-large-cased (vocabulary 28,996).

Peak LR 2e-4, 40k steps, 5k warmup, 2048 x 512, AdamW (0.9, 0.98), bf16.

Launch (every host of a pod slice runs the same command)::

    python -m linkbert_jax.main --config configs/large.py --workdir $WORKDIR \
        --config.data_dir=$TFRECORD_DIR \
        --config.init_from_hf=$BERT_LARGE_CASED_DIR --config.mesh.data=1 --config.mesh.fsdp=-1
"""
from linkbert_jax import config_defaults


def get_config():
    return config_defaults.get_config(
        "large",
        learning_rate=2e-4, num_train_steps=40_000, warmup_steps=5_000,
        global_batch_size=2048, seq_length=512,
        # A local Hugging Face directory of bert-large-cased (override with its path).
        init_from_hf="bert-large-cased",
    )
