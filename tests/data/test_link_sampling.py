"""Issue 21: ``--link_sampling inverse_in_degree|uniform``, the paper's diversity switch.

Each test checks the linked partners against the distribution it claims with a chi-square
test, and against the other distribution too, so it can fail both ways. The draws are keyed
by fixed seeds (the outcome never changes between runs); the 1e-6 level is the chance a
correct sampler would fail with some other seed.
"""
import numpy as np
import pytest
from scipy import stats

from linkbert_jax.data import keyed
from linkbert_jax.data.features import LINKED

LEVEL = 1e-6


def _graph(n_anchors=60, seed=0):
    """Anchors 0..n-1 with 2-6 out-links each to targets whose in-degrees span 1..60."""
    rng = np.random.default_rng(seed)
    deg = rng.integers(2, 7, n_anchors)
    targets = np.concatenate([rng.choice(40, d, replace=False) for d in deg]) + n_anchors
    indeg = rng.integers(1, 61, 40)[targets - n_anchors]
    return deg, targets.astype(np.int64), indeg


def _linked_draws(sampling: str, seed: int = 7):
    """(anchor row, target) of every linked example drawn by ``keyed.draw_examples``."""
    deg, targets, indeg = _graph()
    n = len(deg)
    a = keyed.Anchors(doc=np.arange(n), rank=np.arange(n), nseg=np.full(n, 4),
                      link_offsets=np.concatenate([[0], np.cumsum(deg)]),
                      link_docs=targets, link_ranks=targets,
                      link_weights=keyed.link_weights(indeg, sampling))
    ex = keyed.draw_examples(seed, 0, a, np.array([0.0, 0.0, 150.0]), n + 40)
    m = ex["rel"] == LINKED
    return ex["row"][m], ex["doc_b"][m], (deg, targets, indeg)


def _p_value(rows, docs_b, graph, expected_weight) -> float:
    """Chi-square p-value of the observed (anchor, target) counts against each anchor's
    draws spread ∝ ``expected_weight(in-degree)`` over its out-links."""
    deg, targets, indeg = graph
    offsets = np.concatenate([[0], np.cumsum(deg)])
    chi2, dof = 0.0, 0
    for r in range(len(deg)):
        lo, hi = offsets[r], offsets[r + 1]
        got = docs_b[rows == r]
        obs = np.array([np.sum(got == t) for t in targets[lo:hi]], np.float64)
        w = expected_weight(indeg[lo:hi].astype(np.float64))
        exp = len(got) * w / w.sum()
        assert obs.sum() == len(got)  # every partner is one of the anchor's out-links
        chi2 += float(((obs - exp) ** 2 / exp).sum())
        dof += hi - lo - 1
    return float(stats.chi2.sf(chi2, dof))


def _inverse(indeg):
    return 1.0 / indeg


def _uniform(indeg):
    return np.ones_like(indeg)


@pytest.mark.parametrize("sampling, right, wrong", [
    ("inverse_in_degree", _inverse, _uniform), ("uniform", _uniform, _inverse)])
def test_linked_partners_follow_the_sampling(sampling, right, wrong):
    rows, docs_b, graph = _linked_draws(sampling)
    assert len(rows) > 30_000  # ~600 draws per anchor
    assert _p_value(rows, docs_b, graph, right) > LEVEL
    assert _p_value(rows, docs_b, graph, wrong) < LEVEL


def test_link_weights():
    assert keyed.link_weights([1, 2, 3, 0]).tolist() == [1 << 24, 1 << 23, (1 << 24) // 3,
                                                        1 << 24]
    assert keyed.link_weights([1, 2, 3], "uniform").tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="unknown link sampling 'often'"):
        keyed.link_weights([1], "often")
