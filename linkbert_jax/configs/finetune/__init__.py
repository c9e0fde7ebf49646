"""Fine-tuning task tables: ``--config finetune/NAME:TASK`` (see linkbert_jax/finetune)."""
