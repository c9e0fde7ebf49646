"""Fine-tuning and evaluation on the pretraining mesh: task heads over ``LinkBert``'s
encoder, the same sharded step machinery, LinkBERT's task families
(``python -m linkbert_jax.finetune``; docs/finetune.md).

Imports ``model``/``steps``/``sharding``/``optimizer``; none of them imports this package.
"""
