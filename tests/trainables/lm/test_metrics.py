"""Bits per byte on hand-checked examples, and the windows that score a text."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainables.lm.config import TokenizerConfig
from trainables.lm.evaluate import bits_per_byte, score_ids, text_prefix, text_sample, unigram_score
from trainables.lm.tokenizer import EOT, build_tokenizer, encode


class Uniform(nn.Module):
    """Zero logits: every token has probability 1 / vocab_size."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, self.vocab_size)


def test_bits_per_byte_of_a_uniform_model_by_hand():
    """'héllo' is 5 characters, 6 UTF-8 bytes (é = C3 A9). Five tokens under a uniform model over
    8 entries cost 5 * ln 8 nats = 15 bits, so 15 / 6 = 2.5 bits per byte exactly."""
    ids = [0, 3, 4, 5, 5, 6]  # <|endoftext|> + 5 text tokens
    score = score_ids(Uniform(8), ids, context_length=2, num_bytes=len("héllo".encode("utf-8")))
    assert score.tokens == 5 and score.num_bytes == 6
    assert score.nats == pytest.approx(5 * math.log(8), rel=1e-12)
    assert score.bits_per_byte == pytest.approx(2.5, rel=1e-12)
    assert score.perplexity == pytest.approx(8.0, rel=1e-12)


def test_bits_per_byte_through_a_character_tokenizer(tmp_path):
    """A character tokenizer trained on 'héllo' has 6 entries (2 special + h, é, l, o); scoring
    'héllo' predicts its 5 characters: 5 * log2(6) / 6 = 2.15413541726... bits per byte."""
    tokenizer, _, _ = build_tokenizer(TokenizerConfig(algorithm="char", vocab_size=10), "héllo", tmp_path)
    assert tokenizer.get_vocab_size() == 6
    ids = [tokenizer.token_to_id(EOT)] + encode(tokenizer, "héllo")
    score = score_ids(Uniform(6), ids, context_length=4, num_bytes=6)
    assert score.bits_per_byte == pytest.approx(2.1541354172676, abs=1e-12)


def test_windows_score_every_token_once_as_with_a_full_context():
    """With a context as long as the text, windows equal one direct cross-entropy; shorter windows
    still score each token exactly once."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 7))
    ids = torch.randint(7, (11,)).tolist()
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]]))[0].double()
    direct = float(nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum"))
    assert score_ids(model, ids, 10, 13).nats == pytest.approx(direct, rel=1e-9)
    assert score_ids(model, ids, 3, 13).nats == pytest.approx(direct, rel=1e-9)  # a bigram model: no context needed
    assert score_ids(model, ids, 3, 13).tokens == 10


def test_bits_per_byte_rejects_an_empty_text():
    with pytest.raises(ValueError, match="positive byte count"):
        bits_per_byte(1.0, 0)


def test_unigram_score_by_hand():
    """Train ids [1, 1, 2] with add-one over 4 entries: p(1) = 3/7, p(2) = 2/7."""
    score = unigram_score([1, 1, 2], [0, 1, 2], vocab_size=4, num_bytes=2)
    assert score.nats == pytest.approx(-math.log(3 / 7) - math.log(2 / 7))


def test_text_prefix_and_sample_respect_the_byte_budget():
    text = "".join(f"line {i} é\n" for i in range(1000))
    prefix = text_prefix(text, 100)
    assert len(prefix.encode()) <= 100 and prefix.endswith("\n") and text.startswith(prefix)
    sample = text_sample(text, 800, pieces=8)
    numbers = [int(line.split()[1]) for line in sample.splitlines()]
    assert len(sample.encode()) <= 800 and numbers[0] == 0 and max(numbers) >= 7 * 1000 // 8  # spread to the end
    assert text_sample("short\n", 800) == "short\n"
