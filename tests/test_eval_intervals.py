"""Issue 21: each relation's eval accuracy with its count and a 95% Wilson score interval."""
import pytest

from linkbert_jax.pretrain.evaluation import eval_line, relation_report, relation_stats, wilson_interval


@pytest.mark.parametrize("correct, n, low, high", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
    # method 3 (score interval without continuity correction).
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    # By hand: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.95996.
    (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0)])
def test_wilson_interval_matches_published_values(correct, n, low, high):
    lo, hi = wilson_interval(correct, n)
    assert lo == pytest.approx(low, abs=6e-5) and hi == pytest.approx(high, abs=6e-5)


def test_no_interval_without_examples():
    assert wilson_interval(0, 0) is None


def _ev(prefix="", **rel):
    out = {f"{prefix}drp_accuracy": 0.5, f"{prefix}mlm_loss": 2.0}
    for name, (acc, n) in rel.items():
        out[f"{prefix}drp_accuracy_{name}"] = acc
        out[f"{prefix}drp_weight_{name}"] = float(n)
    return out


def test_report_format_and_zero_count():
    ev = _ev(contiguous=(0.76, 300), random=(0.7, 290), linked=(0.62, 400))
    assert relation_report(ev) == ("contiguous 0.76 [0.71, 0.80] n=300  "
                                   "random 0.70 [0.64, 0.75] n=290  "
                                   "linked 0.62 [0.57, 0.67] n=400")
    ev = _ev("eval_", contiguous=(1.0, 12), random=(0.25, 8), linked=(0.0, 0))
    assert relation_report(ev, "eval_").endswith("random 0.25 [0.07, 0.59] n=8  linked n=0")
    assert relation_stats(ev, "eval_")["linked"][1:] == (None, 0)


def test_only_relations_with_counts_are_reported():
    """A 2-way (NSP) run has no linked stats, an MLM-only run none: no crash, no guess."""
    nsp = _ev(contiguous=(0.9, 50), random=(0.8, 50))
    assert relation_report(nsp) == ("contiguous 0.90 [0.79, 0.96] n=50  "
                                    "random 0.80 [0.67, 0.89] n=50")
    mlm = {"mlm_loss": 2.0, "mlm_accuracy": 0.3}
    assert relation_report(mlm) == "" and eval_line(mlm) == "mlm_loss 2.0000  mlm_accuracy 0.3000"
    line = eval_line(nsp)
    assert line.startswith("drp_accuracy 0.5000  mlm_loss 2.0000  |  contiguous 0.90 [")
    assert "drp_weight" not in line and "drp_accuracy_random" not in line
