"""The model's array operations whose best form depends on the backend: attention
kernels (``attention``) and row gathers whose gradients avoid scatter-adds
(``gather``). Pure functions of arrays; ``linkbert_jax.model`` chooses among them by its
config's numerics fields."""
