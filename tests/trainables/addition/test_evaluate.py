"""Exact match and token accuracy, with oracle models whose answers are known."""

import torch
from torch import nn

from trainables.addition.data import PROMPT_LEN, encode
from trainables.addition.evaluate import score_pairs


class Oracle(nn.Module):
    """Predicts the true next token of A+B (optionally one wrong digit), as one-hot logits."""

    def __init__(self, wrong_digit: int | None = None) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.wrong_digit = wrong_digit

    def forward(self, idx):
        n, t = idx.shape
        a = sum(idx[:, i] * 10 ** (9 - i) for i in range(10))
        b = sum(idx[:, 11 + i] * 10 ** (9 - i) for i in range(10))
        full = encode(a, b)
        if self.wrong_digit is not None:
            full[:, PROMPT_LEN + self.wrong_digit] = (full[:, PROMPT_LEN + self.wrong_digit] + 1) % 10
        logits = torch.zeros(n, t, 14)
        logits[torch.arange(n)[:, None], torch.arange(t)[None, :], full[:, 1:t + 1]] = 1.0
        return logits


PAIRS = torch.tensor([[0, 0], [9_999_999_999, 1], [1_234_567_890, 9_876_543_210], [5, 7]])


def test_oracle_scores_full_exact_match():
    score = score_pairs(Oracle(), PAIRS, batch_size=3)
    assert score.errors == 0 and score.exact_match == 1.0 and score.token_accuracy == 1.0


def test_one_wrong_digit_is_an_error_but_ten_of_eleven_tokens():
    score = score_pairs(Oracle(wrong_digit=4), PAIRS)
    assert score.errors == len(PAIRS) and score.exact_match == 0.0
    assert abs(score.token_accuracy - 10 / 11) < 1e-6
