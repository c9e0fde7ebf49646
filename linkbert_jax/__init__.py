"""linkbert-jax: LinkBERT pretraining (MLM + document relation prediction) in JAX/Flax."""

__version__ = "0.1.0"
