"""Sequence layout, loss mask, holdout and training streams of reference sections 1, 4 and 5."""

import torch

from trainables.addition.data import (
    ADDERBOARD_EDGE_CASES, EOS, EQUALS, IGNORE_INDEX, PLUS, TrainingStream, adderboard_pairs, build_holdout, encode,
    inputs_and_targets,
)


def test_sequence_layout():
    full = encode(torch.tensor([1234567890]), torch.tensor([9876543210]))
    assert full.shape == (1, 34)
    tokens = full[0].tolist()
    assert tokens[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert tokens[10] == PLUS
    assert tokens[11:21] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert tokens[21] == EQUALS
    # 1234567890 + 9876543210 = 11111111100, 11 digits, least significant first
    assert tokens[22:33] == [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert tokens[33] == EOS


def test_zero_padding_of_short_operands_and_sum():
    tokens = encode(torch.tensor([7]), torch.tensor([5]))[0].tolist()
    assert tokens[:10] == [0] * 9 + [7]
    assert tokens[22:33] == [2, 1] + [0] * 9  # 12, reversed, padded to 11


def test_loss_mask_covers_the_sum_digits_and_eos():
    full = encode(torch.tensor([3, 99]), torch.tensor([4, 1]))
    x, y = inputs_and_targets(full)
    assert x.shape == y.shape == (2, 33)
    assert torch.equal(x, full[:, :-1])
    assert torch.all(y[:, :21] == IGNORE_INDEX)
    assert torch.equal(y[:, 21:], full[:, 22:])  # 11 sum digits + EOS: 12 scored targets
    assert int((y != IGNORE_INDEX).sum(dim=1)[0]) == 12


def test_holdout_is_deterministic_unique_and_split():
    val, test = build_holdout(7, val_size=500, test_size=1000)
    again_val, again_test = build_holdout(7, val_size=500, test_size=1000)
    assert torch.equal(val, again_val) and torch.equal(test, again_test)
    pairs = set(map(tuple, torch.cat([val, test]).tolist()))
    assert len(pairs) == 1500
    assert val.min() >= 0 and val.max() < 10**10
    assert not torch.equal(build_holdout(8, 500, 1000)[0], val)


def test_holdout_follows_the_reference_draw_order():
    """First pairs are the first A draws and the first B draws of a generator seeded with the seed."""
    val, _ = build_holdout(41, val_size=5000, test_size=10_000)
    g = torch.Generator().manual_seed(41)
    a = torch.randint(0, 10**10, (30_000,), generator=g)
    b = torch.randint(0, 10**10, (30_000,), generator=g)
    assert torch.equal(val[:100, 0], a[:100]) and torch.equal(val[:100, 1], b[:100])


def test_training_stream_is_seeded_and_avoids_the_holdout():
    val, test = build_holdout(0, 200, 200)
    holdout = set(map(tuple, torch.cat([val, test]).tolist()))
    small = {(int(a), int(b)) for a, b in zip(range(10), range(10))}
    for mode in ("faithful", "fast"):
        a1, b1 = TrainingStream(0, holdout | small, mode).sample(256, 1, 1)
        a2, b2 = TrainingStream(0, holdout | small, mode).sample(256, 1, 1)
        assert torch.equal(a1, a2) and torch.equal(b1, b2)
        assert all((a, b) not in small for a, b in zip(a1.tolist(), b1.tolist()))
        assert a1.max() < 10 and b1.max() < 10


def test_faithful_stream_draws_digit_count_then_a_then_b():
    g = torch.Generator().manual_seed(5 + 1337)
    k = int(torch.randint(1, 4, (1,), generator=g))
    a = int(torch.randint(0, 10**k, (1,), generator=g))
    b = int(torch.randint(0, 10**k, (1,), generator=g))
    sa, sb = TrainingStream(5, set(), "faithful").sample(1, 1, 3)
    assert (int(sa[0]), int(sb[0])) == (a, b)


def test_digit_ranges_respect_the_curriculum():
    a, b = TrainingStream(1, set(), "fast").sample(4096, 1, 3)
    assert a.max() < 1000 and b.max() < 1000
    assert (a >= 100).any()


def test_adderboard_pairs():
    pairs = adderboard_pairs()
    assert pairs.shape == (10_010, 2)
    assert [tuple(p) for p in pairs[:10].tolist()] == list(ADDERBOARD_EDGE_CASES)
    assert pairs.max() <= 9_999_999_999
