"""The two published checkpoints reproduce their published scores (reference sections 5 and 7)."""

import pytest

from trainables.addition.checkpoint import load_checkpoint
from trainables.addition.evaluate import evaluate_100k, evaluate_adderboard

PUBLISHED = {
    # name: (params, 100k errors, {test seed: errors}, AdderBoard passed of 10,010)
    "456p_s43": (456, 0, {41: 0, 100: 0}, 10_010),
    "512p": (512, 12, {41: 2, 100: 0}, 10_008),
}


@pytest.mark.reference
def test_published_scores(reference_checkpoint):
    name, path = reference_checkpoint
    params, errors, by_seed, adderboard = PUBLISHED[name]
    loaded = load_checkpoint(path)
    assert loaded.model.num_parameters() == params == loaded.extra["params"]
    result = evaluate_100k(loaded.model)
    assert result.total == 100_000
    assert result.errors == errors
    assert {s: result.errors_by_seed[s] for s in by_seed} == by_seed
    board = evaluate_adderboard(loaded.model)
    assert (board.passed, board.total) == (adderboard, 10_010)
    assert board.qualified


def test_evaluate_cli_names_a_missing_checkpoint(capsys):
    from trainables.addition.__main__ import main

    assert main(["evaluate", "--checkpoint", "/no/such/file.pt", "--protocol", "adderboard"]) == 2
    assert "checkpoint not found: /no/such/file.pt" in capsys.readouterr().err
