"""Ahead-of-time compile of a config's steps for a TPU slice or this host: does it fit,
what does it cost, what to change (``python -m linkbert_jax.aot``; docs/aot.md)."""
