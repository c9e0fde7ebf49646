"""Pretraining objectives as pure functions: MLM + document relation prediction (DRP).

Everything is first computed as *sums and counts* (``stats``), so that microbatches,
devices, hosts and eval batches aggregate exactly; ``summarize`` turns them into means.

The objective (``config.objective``) fixes the relation head and nothing else: ``drp``
(LinkBERT, 3-way contiguous/random/linked), ``nsp`` (BERT's next sentence prediction,
2-way contiguous/random) or ``mlm`` (no relation head). One code path serves all three:
the head's size is ``num_relations(objective)``, its stats keep the ``drp_`` prefix and
name only the relations it predicts, and without a head there is no relation term.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from linkbert_jax.errors import ConfigError
from linkbert_jax.relations import LINKED, RELATIONS

DEFAULT_OBJECTIVE = "drp"
# objective -> the relation labels its head predicts, in label order (relations.RELATIONS).
_HEAD_RELATIONS = {"drp": RELATIONS, "nsp": RELATIONS[:LINKED], "mlm": ()}
OBJECTIVES = tuple(_HEAD_RELATIONS)


def head_relations(objective: str) -> tuple:
    """The relations ``objective``'s head predicts (``()``: no relation head)."""
    if objective not in _HEAD_RELATIONS:
        raise ConfigError(f"objective {objective!r} is not one of {'|'.join(OBJECTIVES)} "
                          f"(--config.objective)")
    return _HEAD_RELATIONS[objective]


def num_relations(objective: str) -> int:
    """The size of ``objective``'s relation head (``ModelConfig.num_relations``)."""
    return len(head_relations(objective))


def objective_of(num_relations_: int) -> str:
    """The objective a relation head of this size was trained with."""
    for name, rels in _HEAD_RELATIONS.items():
        if len(rels) == num_relations_:
            return name
    raise ValueError(f"no objective has a {num_relations_}-way relation head")


def mlm_stats(logits_BxPxV, ids_BxP, weights_BxP) -> dict:
    """Weighted cross-entropy and accuracy at the masked positions (fp32).

    Written for the CPU/GPU fusers: the gold logit is picked by an iota compare (the
    backward is one fused elementwise pass, not a zero broadcast plus a scatter over
    [B, P, V]) and "correct" is "gold logit is the maximum" (a max reduce, not argmax).
    """
    logits_BxPxV = logits_BxPxV.astype(jnp.float32)
    max_BxP = jnp.max(logits_BxPxV, axis=-1)
    shift_BxP = jax.lax.stop_gradient(max_BxP)
    lse_BxP = shift_BxP + jnp.log(jnp.sum(jnp.exp(logits_BxPxV - shift_BxP[..., None]), -1))
    gold_BxPxV = ids_BxP[..., None] == jnp.arange(logits_BxPxV.shape[-1])
    gold_BxP = jnp.sum(jnp.where(gold_BxPxV, logits_BxPxV, 0.0), axis=-1)
    nll_BxP = lse_BxP - gold_BxP
    w_BxP = weights_BxP.astype(jnp.float32)
    correct_BxP = (gold_BxP >= max_BxP).astype(jnp.float32)
    return {"mlm_loss_sum": jnp.sum(nll_BxP * w_BxP),
            "mlm_correct": jnp.sum(correct_BxP * w_BxP),
            "mlm_weight": jnp.sum(w_BxP)}


def drp_stats(logits_BxR, relation_B, weight_B) -> dict:
    """Weighted R-way cross-entropy and accuracy, overall and per gold relation (the
    first R of ``RELATIONS``: 3 for DRP, 2 for NSP)."""
    logp_BxR = jax.nn.log_softmax(logits_BxR.astype(jnp.float32), axis=-1)
    nll_B = -jnp.take_along_axis(logp_BxR, relation_B[:, None], axis=-1)[:, 0]
    w_B = weight_B.astype(jnp.float32)
    correct_B = (jnp.argmax(logits_BxR, axis=-1) == relation_B).astype(jnp.float32)
    out = {"drp_loss_sum": jnp.sum(nll_B * w_B),
           "drp_correct": jnp.sum(correct_B * w_B),
           "drp_weight": jnp.sum(w_B)}
    for r, name in enumerate(RELATIONS[:logits_BxR.shape[-1]]):
        w_r = w_B * (relation_B == r)
        out[f"drp_correct_{name}"] = jnp.sum(correct_B * w_r)
        out[f"drp_weight_{name}"] = jnp.sum(w_r)
    return out


def batch_stats(output, batch) -> dict:
    """Sums and counts of one (micro)batch; rows weighted by ``example_weight``. The
    relation head's stats only where the model has one (``drp_logits``)."""
    ex_B = batch["example_weight"].astype(jnp.float32)
    out = {"examples": jnp.sum(ex_B),
           **mlm_stats(output.mlm_logits, batch["masked_ids"],
                       batch["masked_weights"] * ex_B[:, None])}
    if output.drp_logits is not None:
        out.update(drp_stats(output.drp_logits, batch["relation"], ex_B))
    return out


def normalizers(batch) -> dict:
    """The denominators of the batch loss, known before the forward pass (so that
    microbatches can be scaled by the *global* counts and their gradients summed)."""
    ex_B = batch["example_weight"].astype(jnp.float32)
    return {"mlm_weight": jnp.maximum(jnp.sum(batch["masked_weights"] * ex_B[:, None]), 1.0),
            "drp_weight": jnp.maximum(jnp.sum(ex_B), 1.0)}


def loss_from_stats(stats: dict, norm: dict, drp_weight: float) -> jax.Array:
    """Total loss = MLM mean + drp_weight * relation mean, with the given denominators
    (MLM mean alone without a relation head)."""
    loss = stats["mlm_loss_sum"] / norm["mlm_weight"]
    if "drp_loss_sum" in stats:
        loss = loss + drp_weight * stats["drp_loss_sum"] / norm["drp_weight"]
    return loss


def summarize(stats: dict, drp_weight: float = 1.0) -> dict:
    """Means from summed stats (works on jax or numpy scalars); the relation means only
    for the relations the stats have (none without a relation head)."""
    def div(a, b):
        return a / jnp.maximum(b, 1e-9)

    out = {"mlm_loss": div(stats["mlm_loss_sum"], stats["mlm_weight"]),
           "mlm_accuracy": div(stats["mlm_correct"], stats["mlm_weight"])}
    out["loss"] = out["mlm_loss"]
    if "drp_loss_sum" in stats:
        out["drp_loss"] = div(stats["drp_loss_sum"], stats["drp_weight"])
        out["drp_accuracy"] = div(stats["drp_correct"], stats["drp_weight"])
        out["loss"] = out["loss"] + drp_weight * out["drp_loss"]
    for name in RELATIONS:
        if f"drp_weight_{name}" in stats:
            out[f"drp_accuracy_{name}"] = div(stats[f"drp_correct_{name}"],
                                              stats[f"drp_weight_{name}"])
    return out
