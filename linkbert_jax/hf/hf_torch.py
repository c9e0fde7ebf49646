"""The PyTorch side of conversion: check an exported directory against ``transformers``.

Needs ``torch`` (verification only; never on the training path). The DRP head of an
export is applied exactly as docs/convert.md shows a PyTorch user; an NSP head (objective
nsp) is BERT's own, read by ``BertForPreTraining``.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from linkbert_jax.hf.hf_files import WEIGHTS_NAME, hf_config_dict
from linkbert_jax.model import ModelConfig
from linkbert_jax.hf.param_mapping import DRP_HEAD, relation_head


def verify_hf(config: ModelConfig, params, hf_dir: str, *, batch: int = 2, seq_len: int = 16,
              seed: int = 0) -> dict:
    """Reload ``hf_dir`` with ``transformers`` (PyTorch, eager attention) and compare with
    the JAX model on a random batch (with padding and token types). Returns max abs diffs:
    ``hidden`` (last hidden state), ``pooled``, ``mlm`` (all positions), and the relation
    head's ``drp`` or ``nsp`` (none without one)."""
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
    head = relation_head_torch(hf_dir, config)
    with torch.no_grad():
        m = mlm(**t)
        b = base(**t)
        rel = head(b.pooler_output) if head is not None else None

    def diff(a, x):
        return float(np.max(np.abs(np.asarray(a, np.float64) - x.double().numpy())))

    res = {"hidden": diff(out.last_hidden_state, b.last_hidden_state),
           "pooled": diff(out.pooled_output, b.pooler_output),
           "mlm": diff(jnp.asarray(out.mlm_logits)[..., :cfg.vocab_size], m.logits)}
    if rel is not None:
        res["drp" if relation_head(config) == DRP_HEAD else "nsp"] = diff(out.drp_logits, rel)
    return res


def relation_head_torch(hf_dir: str, config: ModelConfig):
    """The export's relation head on ``pooler_output`` as a torch module: the DRP head as
    docs/convert.md reads it, BERT's NSP head as ``BertForPreTraining`` loads it; None
    without a relation head."""
    if not config.num_relations:
        return None
    if relation_head(config) == DRP_HEAD:
        return load_drp_head_torch(hf_dir)
    import transformers
    with quiet_transformers():
        return transformers.BertForPreTraining.from_pretrained(hf_dir).eval().cls.seq_relationship


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
                                      if k not in ("architectures", "model_type", "torch_dtype",
                                                   "transformers_version")})


def check_pytorch_bin(hf_dir: str) -> None:
    """``pytorch_model.bin``, when written, holds exactly the safetensors' tensors (and the
    tied MLM decoder, equal to the word embeddings)."""
    import torch
    from safetensors.torch import load_file

    from linkbert_jax.errors import ConversionError
    from linkbert_jax.hf.hf_files import PT_WEIGHTS_NAME
    path = os.path.join(hf_dir, PT_WEIGHTS_NAME)
    if not os.path.exists(path):
        return
    bin_sd = torch.load(path, map_location="cpu", weights_only=True)
    st = load_file(os.path.join(hf_dir, WEIGHTS_NAME))
    st.setdefault("cls.predictions.decoder.weight", st["bert.embeddings.word_embeddings.weight"])
    differ = sorted(k for k in set(st) | set(bin_sd)
                    if k not in st or k not in bin_sd or not torch.equal(st[k], bin_sd[k]))
    if differ:
        raise ConversionError(f"{path}: differs from {WEIGHTS_NAME} at {differ[:3]}")
    print(f"{PT_WEIGHTS_NAME}: the same {len(bin_sd)} tensors as {WEIGHTS_NAME}")


# Cased and uncased words, punctuation, accents, CJK, digits, a special token.
TOKENIZER_CHECK_TEXTS = (
    "LinkBERT pretrains on documents and the hyperlinks between them.",
    "The capital of France is [MASK].",
    "Héllo Wörld: naïve café, Zürich 1999-2024 (¿qué?) 東京 and ĀĒĪ!",
)


def check_slow_tokenizer(hf_dir: str, texts=TOKENIZER_CHECK_TEXTS) -> None:
    """The slow tokenizer (``vocab.txt``), when written, gives the fast one's ids."""
    import transformers

    from linkbert_jax.errors import ConversionError
    if not os.path.exists(os.path.join(hf_dir, "vocab.txt")):
        return
    fast = transformers.AutoTokenizer.from_pretrained(hf_dir)
    slow = transformers.AutoTokenizer.from_pretrained(hf_dir, use_fast=False)
    a, b = fast(list(texts))["input_ids"], slow(list(texts))["input_ids"]
    if a != b:
        bad = next(i for i in range(len(texts)) if a[i] != b[i])
        raise ConversionError(f"{hf_dir}: slow and fast tokenizers disagree on "
                              f"{texts[bad]!r}: {b[bad]} vs {a[bad]}")
    print(f"tokenizer: slow ({type(slow).__name__}) and fast give the same ids on "
          f"{len(texts)} texts")
