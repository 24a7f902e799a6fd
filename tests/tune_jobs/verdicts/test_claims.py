"""The claims registry and the claim verdict rules."""

import math

import pytest

from trainables.addition.model import count_parameters
from tune_jobs.verdicts.claims import (
    CLAIM_REPRODUCED, IN_DISTRIBUTION, NOT_REPRODUCED, ClaimError, claim_verdict, first_difference, list_claims,
    load_claim,
)

# Every claim of reference section 6, with the parameter count its config must have.
SECTION_6 = {
    "582p-s42": 582, "512p-s42": 512, "456p-s43": 456, "456p-s44": 456,
    "456p-s42-nogrok": 456, "456p-s45-nogrok": 456, "456p-s46-nogrok": 456,
    "d8ff28-lr0.006": 1128, "d8ff28-lr0.008": 1128, "d8ff28-lr0.010": 1128, "d8ff28-lr0.012": 1128,
    "d8ff28-lr0.015": 1128, "d8ff28-lr0.010-first-run": 1128,
    "456p-s43-mps": 456, "456p-s44-mps": 456, "512p-s42-mps": 512,
}


def test_every_section_6_claim_is_shipped():
    assert set(list_claims()) == set(SECTION_6)


@pytest.mark.parametrize("name", sorted(SECTION_6))
def test_claims_load_with_the_records_parameter_count(name):
    claim = load_claim(name)
    assert count_parameters(claim.model) == SECTION_6[name]
    assert claim.source_repository and claim.source_commit and claim.source_device


def test_published_numbers():
    c43, c512 = load_claim("456p-s43"), load_claim("512p-s42")
    assert (c43.train.seed, c43.train.train_steps, c43.train.eval_interval, c43.claimed_value) == (43, 54_000, 500, 1.0)
    assert (c512.train.seed, c512.train.train_steps, c512.claimed_value, c512.protocol) == (42, 27_000, 0.99988, "100k")
    assert load_claim("d8ff28-lr0.015").train.lr == 0.015
    assert load_claim("456p-s45-nogrok").comparison == "at_most"


def test_rules():
    c512 = load_claim("512p-s42")
    assert c512.holds(0.99988) and c512.holds(1.0) and c512.holds(0.99979) and not c512.holds(0.9997)
    assert not c512.holds(math.nan)
    nogrok = load_claim("456p-s42-nogrok")
    assert nogrok.holds(0.0) and nogrok.holds(0.5) and not nogrok.holds(0.93)
    assert c512.rule() == "100k exact match >= 0.99978"


def test_unknown_and_malformed_claims(tmp_path):
    with pytest.raises(ClaimError, match="claim 'no-such' not found .*known: 456p-s42-nogrok"):
        load_claim("no-such")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndescription = ""\nsource_repository = "r"\nsource_commit = "c"\n'
                   'source_device = "d"\nprotocol = "10k"\ncomparison = "at_least"\nclaimed_value = 1.0\n'
                   'tolerance = 0.0\n[model]\n[train]\n')
    with pytest.raises(ClaimError, match="protocol must be one of 100k, adderboard, validation, got '10k'"):
        load_claim(str(bad))
    bad.write_text(bad.read_text().replace('"10k"', '"100k"').replace("[model]\n", "[model]\nqkv_rank = 9\n"))
    with pytest.raises(ClaimError, match="qkv_rank=9 must be smaller than d_model=7"):
        load_claim(str(bad))


def test_first_difference():
    assert first_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) is None
    assert first_difference([1.0, 2.0, 3.0], [1.0, 2.5, 3.0]) == 1
    assert first_difference([1.0, 2.0], [1.0, 2.0, 3.0]) == 2


def test_claim_verdicts():
    claim = load_claim("512p-s42")
    same = [0.5, 0.4]
    reproduced = claim_verdict(claim, [(0.99990, same), (0.99990, same)], [0.2, 1.0])
    assert (reproduced.verdict, reproduced.deterministic, reproduced.label) == (CLAIM_REPRODUCED, True, CLAIM_REPRODUCED)
    assert (reproduced.other_successes, reproduced.other_seeds) == (1, 2)
    in_distribution = claim_verdict(claim, [(0.0, same), (0.0, [0.5, 0.41])], [1.0, 0.0, 0.0])
    assert in_distribution.verdict == IN_DISTRIBUTION and in_distribution.first_difference_step == 1
    assert in_distribution.label == "REPRODUCED IN DISTRIBUTION + NONDETERMINISTIC"
    assert claim_verdict(claim, [(0.0, same)], [0.0]).verdict == NOT_REPRODUCED
    with pytest.raises(ValueError, match="at least one run of the claimed seed"):
        claim_verdict(claim, [], [1.0])
