"""LinkBERT in Flax linen: Hugging Face ``BertModel`` exactly, plus MLM and DRP heads.

The model knows nothing of data, optimizers or checkpoints. Parameters are a plain pytree
whose layout mirrors Hugging Face's BERT (``embeddings``, ``encoder/layer_<i>``, ``pooler``)
so that conversion is a name map (see ``linkbert_jax.hf.convert``).

Shapes in names: B batch, L length, D hidden, N heads, H head dim, F mlp, P predictions,
V (padded) vocabulary, R relations.

Logical axis names (mapped to mesh axes by rules in the training config):
``batch, length, embed, mlp, heads, kv, vocab, layers`` (and ``None`` for small axes).
"""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from linkbert_jax.architectures import (  # noqa: F401  (the model's config, re-exported)
    ACTIVATIONS, ARCHITECTURE_FIELDS, DROPOUT_FIELDS, NUMERICS_FIELDS, ModelConfig)
from linkbert_jax.ops import attention, dropout, gather
from linkbert_jax.readout import Readout, at_positions, flat, key_mask


@flax.struct.dataclass
class LinkBertOutput:
    last_hidden_state: jax.Array  # [B, L, D]
    pooled_output: jax.Array  # [B, D]
    mlm_logits: Optional[jax.Array] = None  # [B, P, V_padded], padded columns at -inf
    drp_logits: Optional[jax.Array] = None  # [B, R]; None without a relation head

    def __getitem__(self, key):  # dict-style access too
        return getattr(self, key)


# ``rules=()``: the boxes carry logical names for ``nn.get_partition_spec`` but apply no
# sharding constraint when unboxed. DenseGeneral unboxes its *flat* 2-D kernel before
# reshaping it (also for flax's shape check during ``apply``), which a 3-name constraint
# would reject whenever a mesh is in context; placement comes from jit out_shardings.
def _init(cfg: ModelConfig, names):
    return nn.with_logical_partitioning(nn.initializers.normal(cfg.initializer_range), names,
                                        rules=())


def _zeros(names):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names, rules=())


def _layer_norm(cfg: ModelConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(
        epsilon=cfg.layer_norm_eps, dtype=cfg.compute_dtype, param_dtype=jnp.float32,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
        bias_init=_zeros(("embed",)), name=name)


def dense(cfg: ModelConfig, features, axis, names, name: str) -> nn.DenseGeneral:
    """The model's dense layer (task heads use it too): ``cfg``'s compute dtype, float32
    parameters, BERT's initializer, logical axis ``names`` (inputs..., outputs...)."""
    out_names = names[-(len(features) if isinstance(features, tuple) else 1):]
    return nn.DenseGeneral(
        features, axis=axis, dtype=cfg.compute_dtype, param_dtype=jnp.float32,
        kernel_init=_init(cfg, names), bias_init=_zeros(out_names), name=name)


class Embeddings(nn.Module):
    config: ModelConfig

    def setup(self):
        cfg = self.config

        def embed(n, name):
            return nn.Embed(n, cfg.hidden_size, dtype=cfg.compute_dtype,
                            param_dtype=jnp.float32,
                            embedding_init=_init(cfg, ("vocab", "embed")), name=name)

        self.word_embeddings = embed(cfg.padded_vocab_size, "word_embeddings")
        self.position_embeddings = embed(cfg.max_position_embeddings, "position_embeddings")
        self.token_type_embeddings = embed(cfg.type_vocab_size, "token_type_embeddings")
        self.layer_norm = _layer_norm(cfg, "LayerNorm")
        self.dropout = dropout.Dropout(cfg.hidden_dropout_prob)

    def __call__(self, ids_BxL, type_BxL, deterministic: bool, pos_BxL=None):
        """Word + position + token-type embeddings (``nn.Embed``'s values). Positions are
        a slice of their table unless given and token types a one-hot product, on every
        backend; words (and given positions) have one-hot-product gradients where
        ``gathers_by_dot``: no scatter (``linkbert_jax.ops.gather``)."""
        dtype = self.config.compute_dtype
        if pos_BxL is None:
            pos_1xLxD = self.position_embeddings.embedding[:ids_BxL.shape[1]][None]
            pos_BxLxD = pos_1xLxD.astype(dtype)
        else:
            pos_BxLxD = self._rows(self.position_embeddings, pos_BxL)
        types_BxLxD = gather.small_table_rows(self.token_type_embeddings.embedding,
                                              type_BxL, dtype)
        h_BxLxD = self._rows(self.word_embeddings, ids_BxL) + pos_BxLxD + types_BxLxD
        h_BxLxD = self.layer_norm(h_BxLxD)
        return self.dropout(h_BxLxD, deterministic=deterministic)

    def _rows(self, embed: nn.Embed, ids):
        if self.config.gathers_by_dot:
            return gather.rows_by_dot(embed.embedding, ids, self.config.compute_dtype)
        return embed(ids)

    def attend(self, x_BxPxD):
        """Logits against the (tied) word embeddings: ``x @ E^T``."""
        return self.word_embeddings.attend(x_BxPxD)


class SelfAttention(nn.Module):
    """Queries from ``x`` (``[B, Q, D]``: every position of ``h``, as in BERT, or some of
    them), keys and values from ``h`` where ``mask`` (``[B, 1, 1|Q, L]`` bool: padding, or
    which tokens share an example); flax's ``inputs_q`` / ``inputs_kv``."""

    config: ModelConfig
    deterministic: bool

    @nn.compact
    def __call__(self, x_BxQxD, h_BxLxD, mask_Bx1xQxL):
        cfg = self.config
        shape = (cfg.num_attention_heads, cfg.head_dim)
        source = {"query": x_BxQxD, "key": h_BxLxD, "value": h_BxLxD}
        qkv = {n: dense(cfg, shape, -1, ("embed", "heads", "kv"), n)(source[n])
               for n in ("query", "key", "value")}
        q, k, v = (nn.with_logical_constraint(qkv[n], ("batch", "length", "heads", "kv"))
                   for n in ("query", "key", "value"))
        if cfg.attention == "xla":
            o_BxLxNxH = attention.explicit(q, k, v, mask_Bx1xQxL,
                                           cfg.attention_probs_dropout_prob,
                                           self.deterministic)
        else:
            o_BxLxNxH = attention.fused(q, k, v, mask_Bx1xQxL,
                                        attention.IMPLEMENTATIONS[cfg.attention])
        o_BxLxNxH = nn.with_logical_constraint(o_BxLxNxH, ("batch", "length", "heads", "kv"))
        out = dense(cfg, cfg.hidden_size, (-2, -1), ("heads", "kv", "embed"),
                     "output")(o_BxLxNxH)
        return dropout.Dropout(cfg.hidden_dropout_prob)(out, deterministic=self.deterministic)


class Layer(nn.Module):
    """One post-LN transformer layer; ``(h, mask) -> (h, None)`` so it can be scanned.
    :meth:`block` is the layer at some positions ``x`` of ``h`` alone (``[B, Q, D]``, the
    same values), for a pooled head, without the other positions' queries and MLP."""

    config: ModelConfig
    deterministic: bool

    def __call__(self, h_BxLxD, mask_Bx1xQxL):
        return self.block(h_BxLxD, h_BxLxD, mask_Bx1xQxL), None

    @nn.compact
    def block(self, x_BxQxD, h_BxLxD, mask_Bx1xQxL):
        cfg = self.config
        a = SelfAttention(cfg, self.deterministic, name="attention")(x_BxQxD, h_BxLxD,
                                                                     mask_Bx1xQxL)
        h_BxLxD = _layer_norm(cfg, "attention_LayerNorm")(x_BxQxD + a)
        f_BxLxF = dense(cfg, cfg.intermediate_size, -1, ("embed", "mlp"),
                         "intermediate")(h_BxLxD)
        f_BxLxF = nn.with_logical_constraint(ACTIVATIONS[cfg.hidden_act](f_BxLxF),
                                             ("batch", "length", "mlp"))
        f_BxLxD = dense(cfg, cfg.hidden_size, -1, ("mlp", "embed"), "output")(f_BxLxF)
        f_BxLxD = dropout.Dropout(cfg.hidden_dropout_prob)(f_BxLxD,
                                                           deterministic=self.deterministic)
        h_BxLxD = _layer_norm(cfg, "output_LayerNorm")(h_BxLxD + f_BxLxD)
        return nn.with_logical_constraint(h_BxLxD, ("batch", "length", "embed"))


def _layer_class(cfg: ModelConfig):
    if cfg.remat == "none":
        return Layer
    policy = (jax.checkpoint_policies.dots_with_no_batch_dims_saveable
              if cfg.remat == "dots" else None)
    return nn.remat(Layer, policy=policy, prevent_cse=not cfg.scan_layers)


class Encoder(nn.Module):
    """The layers: ``__call__`` is BERT's encoder; :meth:`read` runs the last layer at
    the positions a pooled head reads only (``[E, 1, D]``, a :class:`Readout`)."""

    config: ModelConfig

    def __call__(self, h_BxLxD, mask_Bx1xQxL, deterministic: bool):
        return self._stack(h_BxLxD, mask_Bx1xQxL, deterministic, None)

    def read(self, h_BxLxD, mask_Bx1xQxL, deterministic: bool, readout: Readout):
        return self._stack(h_BxLxD, mask_Bx1xQxL, deterministic, readout)

    @nn.compact
    def _stack(self, h_BxLxD, mask_Bx1xQxL, deterministic: bool,
               readout: Optional[Readout]):
        cfg = self.config
        layer_cls = _layer_class(cfg)
        if cfg.scan_layers:
            stack = nn.scan(
                layer_cls, variable_axes={"params": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast,), length=cfg.num_hidden_layers,
                metadata_params={nn.PARTITION_NAME: "layers"})
            h_BxLxD, _ = stack(cfg, deterministic, name="layers")(h_BxLxD, mask_Bx1xQxL)
            return h_BxLxD if readout is None else readout.take(h_BxLxD)
        layers = [layer_cls(cfg, deterministic, name=f"layer_{i}")
                  for i in range(cfg.num_hidden_layers)]
        for layer in layers if readout is None else layers[:-1]:
            h_BxLxD, _ = layer(h_BxLxD, mask_Bx1xQxL)
        if readout is None:
            return h_BxLxD
        h_GxKxD = readout.groups(h_BxLxD)
        return flat(layers[-1].block(readout.queries(h_GxKxD), h_GxKxD, readout.key_mask()))


class MlmHead(nn.Module):
    """Transform (dense + act + LayerNorm), then the tied decoder plus its own bias."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxPxD, embeddings: Embeddings):
        cfg = self.config
        x_BxPxD = dense(cfg, cfg.hidden_size, -1, ("embed", "embed_out"),
                         "transform")(x_BxPxD)
        x_BxPxD = _layer_norm(cfg, "transform_LayerNorm")(ACTIVATIONS[cfg.hidden_act](x_BxPxD))
        bias_V = self.param("bias", _zeros(("vocab",)), (cfg.padded_vocab_size,), jnp.float32)
        logits_BxPxV = embeddings.attend(x_BxPxD)
        logits_BxPxV = nn.with_logical_constraint(logits_BxPxV, ("batch", None, "vocab"))
        # Padded vocabulary rows never win: -inf added (not a select, whose backward would
        # copy the [B, P, V] gradient twice), together with the bias, in fp32.
        pad_V = jnp.where(jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size, 0.0, -jnp.inf)
        return logits_BxPxV.astype(jnp.float32) + (bias_V + pad_V)


class LinkBert(nn.Module):
    """BERT encoder + pooler + MLM head (at given positions) + a relation head (DRP or
    NSP, ``num_relations`` ways) on pooled [CLS]; no relation head when it is 0."""

    config: ModelConfig

    def setup(self):
        cfg = self.config
        self.embeddings = Embeddings(cfg, name="embeddings")
        self.encoder = Encoder(cfg, name="encoder")
        self.pooler = dense(cfg, cfg.hidden_size, -1, ("embed", "embed_out"), "pooler")
        self.mlm = MlmHead(cfg, name="mlm")
        if cfg.num_relations:
            self.drp = dense(cfg, cfg.num_relations, -1, ("embed", None), "drp")

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, *,
               deterministic: bool = True, position_ids=None, segment_ids=None):
        """Embeddings + encoder layers: the last hidden state ``[B, L, D]``. Packed rows
        (several examples each) give ``segment_ids`` and ``position_ids`` instead of
        ``attention_mask``. Task heads (``linkbert_jax.finetune``) call this or
        :meth:`read`, and :meth:`pool`, so a task model holds no MLM/DRP parameters."""
        h_BxLxD, mask = self._embed(input_ids, attention_mask, token_type_ids,
                                    deterministic, position_ids, segment_ids)
        return self.encoder(h_BxLxD, mask, deterministic)

    def read(self, input_ids, attention_mask=None, token_type_ids=None, *,
             readout: Readout, deterministic: bool = True, position_ids=None,
             segment_ids=None):
        """:meth:`encode` where a pooled head reads: the last hidden state at the
        ``readout``'s positions only, ``[E, 1, D]`` (enough for :meth:`pool`); the last
        layer computes nothing else."""
        h_BxLxD, mask = self._embed(input_ids, attention_mask, token_type_ids,
                                    deterministic, position_ids, segment_ids)
        return self.encoder.read(h_BxLxD, mask, deterministic, readout)

    def _embed(self, input_ids, attention_mask, token_type_ids, deterministic,
               position_ids, segment_ids):
        """The embeddings ``[B, L, D]`` and the key mask of the encoder's layers."""
        ids_BxL = jnp.asarray(input_ids, jnp.int32)
        mask_BxL = (jnp.ones_like(ids_BxL) if attention_mask is None
                    else jnp.asarray(attention_mask, jnp.int32))
        type_BxL = (jnp.zeros_like(ids_BxL) if token_type_ids is None
                    else jnp.asarray(token_type_ids, jnp.int32))
        ids_BxL = nn.with_logical_constraint(ids_BxL, ("batch", "length"))
        h_BxLxD = self.embeddings(ids_BxL, type_BxL, deterministic, position_ids)
        h_BxLxD = nn.with_logical_constraint(h_BxLxD, ("batch", "length", "embed"))
        return h_BxLxD, key_mask(mask_BxL, segment_ids)

    def pool(self, h_BxLxD):
        """BERT's pooler: tanh(dense(h[:, 0])), the [CLS] summary ``[B, D]``."""
        return jnp.tanh(self.pooler(h_BxLxD[:, 0]))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
                 masked_positions=None, *, deterministic: bool = True) -> LinkBertOutput:
        h_BxLxD = self.encode(input_ids, attention_mask, token_type_ids,
                              deterministic=deterministic)
        pooled_BxD = self.pool(h_BxLxD)
        drp_BxR = (self.drp(pooled_BxD).astype(jnp.float32) if self.config.num_relations
                   else None)
        mlm_BxPxV = None
        if masked_positions is not None or self.is_initializing():
            pos_BxP = (jnp.zeros(h_BxLxD.shape[:1] + (1,), jnp.int32)
                       if masked_positions is None
                       else jnp.asarray(masked_positions, jnp.int32))
            # Gather first, then project: the vocab matmul only at predicted positions.
            x_BxPxD = (gather.positions_by_dot(h_BxLxD, pos_BxP)
                       if self.config.gathers_by_dot
                       else at_positions(h_BxLxD, pos_BxP))
            mlm_BxPxV = self.mlm(x_BxPxD, self.embeddings)
        return LinkBertOutput(last_hidden_state=h_BxLxD, pooled_output=pooled_BxD,
                              mlm_logits=mlm_BxPxV, drp_logits=drp_BxR)


def init_params(config: ModelConfig, rng: jax.Array, seq_len: int = 8) -> Any:
    """Initial parameters as a plain (unboxed) pytree."""
    ids = jnp.zeros((1, seq_len), jnp.int32)
    variables = LinkBert(config).init(rng, ids, deterministic=True)
    return nn.meta.unbox(variables["params"])
