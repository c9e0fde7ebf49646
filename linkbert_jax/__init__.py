"""linkbert-jax: LinkBERT pretraining (MLM + document relation prediction) in JAX/Flax.

The package by concern (docs/layout.md): the core at the top (``model``, ``objectives``,
``sharding``, ``optimizer``, ``relations``, ``errors``), then ``data/``, ``infra/``,
``checkpoint/``, ``hf/``, ``pretrain/``, ``finetune/``, ``aot/`` and ``ablate/``.
Modules that lived at the top until 0.2 (``linkbert_jax.convert``, ``.trainer``, ...)
still import under their old names, with a ``DeprecationWarning``: see ``_moved``.
"""
from linkbert_jax import _moved

__version__ = "0.2.0"

_moved.install()
