"""The model's array operations whose best form depends on the backend: attention
kernels (``attention``), row gathers whose gradients avoid scatter-adds (``gather``),
and dropout from 16-bit draws (``dropout``). Functions of arrays (and one stateless flax
module); ``linkbert_jax.model`` chooses among them by its config's numerics fields."""
