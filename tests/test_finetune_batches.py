"""Fine-tuning batches that follow their rows' lengths (``data.Lengths``): the cut,
grouping by length, and packing. (That cut and packed batches train and evaluate like
full-length ones, against PyTorch on full-length batches, is in
``test_finetune_parity.py``.)"""
import numpy as np
import pytest

from linkbert_jax.finetune import data, packing


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


def _unpack(packed, L):
    """Each sequence's tokens, read back at its [CLS] from its row and segment."""
    G, R, _ = packed["input_ids"].shape
    out = []
    for g in range(G):
        for c in packed["cls_index"][g].reshape(-1):
            r, o = divmod(int(c), L)
            seg = packed["segment_ids"][g, r]
            own = np.flatnonzero(seg == seg[o])
            assert own[0] == o and np.all(np.diff(own) == 1)  # one contiguous run
            np.testing.assert_array_equal(packed["position_ids"][g, r, own],
                                          np.arange(len(own)))
            out.append(packed["input_ids"][g, r, own])
    return out


@pytest.mark.parametrize("choices,group", [(None, 8), (None, 2), (3, 4)])
def test_packing_keeps_every_sequence_whole_in_fewer_rows(choices, group):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, 16)
    split = _split(lengths, L=64, choices=choices)
    ids = split.arrays["input_ids"]
    ids[...] = np.where(split.arrays["attention_mask"] > 0, 1000 + np.arange(ids.size).reshape(
        ids.shape) % 997, 0)
    (b,) = data.train_batches(split, 16, 0, 0)
    packed = packing.pack(b, group, row_multiple=1)
    G, R, L = packed["input_ids"].shape
    C = choices or 1
    assert G == 16 // group and packed["cls_index"].shape == ((G, group, C) if choices
                                                              else (G, group))
    assert packed["labels"].shape == (G, group)
    np.testing.assert_array_equal(packing.examples(packed)["labels"], b["labels"])
    real = b["attention_mask"].reshape(-1, L)
    for seq, row, m in zip(_unpack(packed, L), b["input_ids"].reshape(-1, L), real):
        np.testing.assert_array_equal(seq, row[m > 0])  # whole, in example order
    assert packed["input_ids"].size <= 0.7 * real.size  # 16 x C rows, packed in fewer


def test_packing_a_padded_last_batch_and_its_row_counts():
    split = _split([10, 30, 50])  # a batch of 4: one padding example
    (b,) = data.train_batches(split, 4, 0, 0)
    packed = packing.pack(b, 4, row_multiple=3)
    assert packed["input_ids"].shape[1] == 3  # 2 rows needed, a multiple of 3
    np.testing.assert_array_equal(packed["example_weight"], [[1, 1, 1, 0]])
    assert packing.group_size(32, 1, 32) == 32 and packing.group_size(32, 8, 32) == 4
    assert packing.group_size(24, 2, 8) == 6 and packing.group_size(8, 8, 32) == 1
    with pytest.raises(ValueError, match="groups of 3"):
        packing.pack(b, 3)


@pytest.mark.parametrize("shapes", [1, 2, 4, 16])
def test_pack_shapes_bounds_the_row_counts_of_an_epoch(shapes):
    """``pack_shapes``: a group of 16 sequences takes a multiple of 16 / shapes rows, so
    an epoch's batches come in at most ``shapes`` shapes (each sequence still whole)."""
    rng = np.random.default_rng(1)
    split = _split(rng.integers(3, 60, 640), L=64)
    lengths = data.Lengths(pack=16, pack_shapes=shapes)
    counts = {b["input_ids"].shape[1] for epoch in range(2)
              for b in data.train_batches(split, 16, 0, epoch, lengths=lengths)}
    step = 16 // shapes
    assert counts and all(r % step == 0 and r <= 16 for r in counts), counts
    assert len(counts) <= shapes
    if shapes == 16:
        assert len(counts) > 2  # these lengths need several row counts when not rounded
