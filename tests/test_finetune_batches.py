"""Fine-tuning batches that follow their rows' lengths (``data.Lengths``): the cut, and
grouping by length. (That cut batches train and evaluate like full-length ones, against
PyTorch on full-length batches, is in ``test_finetune_parity.py``.)"""
import numpy as np

from linkbert_jax.finetune import data


def _split(lengths, L=64, choices=None):
    shape = (len(lengths),) + ((choices,) if choices else ()) + (L,)
    mask = np.zeros(shape, np.int32)
    for i, n in enumerate(lengths):
        mask[i, ..., :n] = 1
    arrays = {"input_ids": mask * 7, "attention_mask": mask, "token_type_ids": 0 * mask,
              "labels": np.arange(len(lengths), dtype=np.int32)}
    return data.Split("f.json", None, arrays, True)


def test_a_batch_is_cut_to_its_longest_row_rounded_up():
    split = _split([5, 17, 9, 3])
    cut = data.Lengths(data.INPUTS, 8)
    (b,) = data.eval_batches(split, 4, lengths=cut)
    assert b["input_ids"].shape == (4, 24) and b["attention_mask"].sum() == 34
    (b,) = data.train_batches(split, 4, 0, 0, lengths=data.Lengths(data.INPUTS, 0))
    assert b["input_ids"].shape == (4, 64)  # multiple 0: never cut
    (b,) = data.train_batches(split, 4, 0, 0, lengths=data.Lengths((), 8))
    assert b["input_ids"].shape == (4, 64)  # no keys (QA): never cut
    (b,) = data.train_batches(_split([60, 2]), 2, 0, 0, lengths=cut)
    assert b["input_ids"].shape == (2, 64)  # not past max_seq_length
    (b,) = data.train_batches(_split([5, 11], choices=4), 2, 0, 0, lengths=cut)
    assert b["input_ids"].shape == (2, 4, 16) and b["labels"].shape == (2,)
    tok = data.Lengths(data.INPUTS + ("labels",), 8)  # token labels are cut with the inputs
    split = _split([5, 9])
    split.arrays["labels"] = np.full((2, 64), -100, np.int32)
    (b,) = data.eval_batches(split, 2, lengths=tok)
    assert "labels" not in b  # eval batches carry no labels
    (b,) = data.train_batches(split, 2, 0, 0, lengths=tok)
    assert b["labels"].shape == (2, 16)


def test_grouped_batches_hold_similar_lengths_and_every_row_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 64, 1000)
    split = _split(lengths)
    batches = list(data.train_batches(split, 16, 3, 1, lengths=data.Lengths(data.INPUTS, 8,
                                                                             group=True)))
    rows = np.concatenate([b["labels"][b["example_weight"] > 0] for b in batches])
    assert sorted(rows) == list(range(1000))  # an epoch: every row once
    assert batches[-1]["example_weight"].sum() == 1000 % 16  # the short batch last
    spread = [np.ptp(lengths[b["labels"][b["example_weight"] > 0]]) for b in batches]
    plain = list(data.train_batches(split, 16, 3, 1))
    plain_spread = [np.ptp(lengths[b["labels"]]) for b in plain[:-1]]
    assert np.mean(spread) < np.mean(plain_spread) / 5, (np.mean(spread), np.mean(plain_spread))
    widths = [b["input_ids"].shape[1] for b in batches]
    assert np.mean(widths) < 48 and len(set(widths)) > 4  # cut, to several lengths
    again = list(data.train_batches(split, 16, 3, 1, lengths=data.Lengths(data.INPUTS, 8,
                                                                           group=True)))
    assert all((a["labels"] == b["labels"]).all() for a, b in zip(batches, again))
    other = list(data.train_batches(split, 16, 3, 2, lengths=data.Lengths(data.INPUTS, 8,
                                                                           group=True)))
    assert any((a["labels"] != b["labels"]).any() for a, b in zip(batches, other))
    # per process: the same global batches, cut alike, split by rows
    halves = [list(data.train_batches(split, 16, 3, 1, p, 2,
                                      data.Lengths(data.INPUTS, 8, group=True)))
              for p in (0, 1)]
    for whole, a, b in zip(batches, *halves):
        assert (np.concatenate([a["input_ids"], b["input_ids"]]) == whole["input_ids"]).all()
