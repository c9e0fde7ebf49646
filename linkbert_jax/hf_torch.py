"""The PyTorch side of conversion: check an exported directory against ``transformers``.

Needs ``torch`` (verification only; never on the training path). The DRP head of an
export is applied exactly as docs/convert.md shows a PyTorch user.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from linkbert_jax.convert import WEIGHTS_NAME, hf_config_dict
from linkbert_jax.model import ModelConfig

def verify_hf(config: ModelConfig, params, hf_dir: str, *, batch: int = 2, seq_len: int = 16,
              seed: int = 0) -> dict:
    """Reload ``hf_dir`` with ``transformers`` (PyTorch, eager attention) and compare with
    the JAX model on a random batch (with padding and token types). Returns max abs diffs:
    ``hidden`` (last hidden state), ``pooled``, ``mlm`` (all positions), ``drp``."""
    import jax.numpy as jnp
    import torch
    import transformers

    from linkbert_jax.model import LinkBert

    cfg = config.replace(dtype="float32")
    rng = np.random.default_rng(seed)
    L = min(seq_len, cfg.max_position_embeddings)
    ids = rng.integers(0, cfg.vocab_size, (batch, L))
    mask = np.ones((batch, L), np.int64)
    mask[-1, L // 2:] = 0
    types = np.zeros((batch, L), np.int64)
    types[:, L // 3:] = min(1, cfg.type_vocab_size - 1)
    pos = np.broadcast_to(np.arange(L), (batch, L))
    out = LinkBert(cfg).apply({"params": params}, ids, mask, types, pos, deterministic=True)

    with quiet_transformers():
        mlm = transformers.AutoModelForMaskedLM.from_pretrained(
            hf_dir, attn_implementation="eager").eval()
        base = transformers.AutoModel.from_pretrained(hf_dir, attn_implementation="eager").eval()
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
         dict(input_ids=ids, attention_mask=mask, token_type_ids=types).items()}
    with torch.no_grad():
        m = mlm(**t)
        b = base(**t)
        drp = load_drp_head_torch(hf_dir)(b.pooler_output) if config.num_relations else None

    def diff(a, x):
        return float(np.max(np.abs(np.asarray(a, np.float64) - x.double().numpy())))

    res = {"hidden": diff(out.last_hidden_state, b.last_hidden_state),
           "pooled": diff(out.pooled_output, b.pooler_output),
           "mlm": diff(jnp.asarray(out.mlm_logits)[..., :cfg.vocab_size], m.logits)}
    if drp is not None:
        res["drp"] = diff(out.drp_logits, drp)
    return res


def load_drp_head_torch(hf_dir: str):
    """The DRP head of an exported directory as a ``torch.nn.Linear`` (what docs/convert.md
    shows, without linkbert_jax): ``logits = head(BertModel(...).pooler_output)``."""
    import torch
    from safetensors.torch import load_file

    w = load_file(os.path.join(hf_dir, WEIGHTS_NAME))
    head = torch.nn.Linear(w["drp.weight"].shape[1], w["drp.weight"].shape[0])
    head.load_state_dict({"weight": w["drp.weight"].float(), "bias": w["drp.bias"].float()})
    return head.eval()


class quiet_transformers:
    """Silence the load report (unexpected cls.*/drp.* keys are expected here)."""

    def __enter__(self):
        import transformers
        self._v = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

    def __exit__(self, *exc):
        import transformers
        transformers.logging.set_verbosity(self._v)
        transformers.logging.enable_progress_bar()


def load_info_torch(hf_dir: str, auto_class: str, **kw) -> dict:
    """``output_loading_info`` of ``transformers.<auto_class>.from_pretrained(hf_dir)``."""
    import transformers
    with quiet_transformers():
        _, info = getattr(transformers, auto_class).from_pretrained(
            hf_dir, output_loading_info=True, **kw)
    return {k: sorted(v) if isinstance(v, set) else v for k, v in info.items()}


def config_to_hf(config: ModelConfig) -> Any:
    """A ``transformers.BertConfig`` of the same architecture."""
    import transformers
    return transformers.BertConfig(**{k: v for k, v in hf_config_dict(config).items()
                                      if k not in ("architectures", "model_type")})
