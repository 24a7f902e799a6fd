"""The tie table drives both models: every mode of the config is in it, its maps are the model's
parameters in creation order, and tied projections share their path."""

import pytest

from trainables.addition.config import TIE_MODES, ModelConfig
from trainables.addition.model import AdditionTransformer
from trainables.addition.ties import TIES, query_start


def test_the_table_covers_every_tie_mode():
    assert set(TIES) == set(TIE_MODES)


@pytest.mark.parametrize("tie", TIE_MODES)
def test_the_table_lists_the_models_qkv_maps_in_creation_order(tie):
    config = ModelConfig(d_model=6, d_ff=12, tie_qkv=tie, qkv_rank=2 if tie.startswith("share") else 0)
    attn = AdditionTransformer(config).blocks[0].attn
    names = [name.split(".")[0] for name, _ in attn.named_parameters() if not name.startswith("proj")]
    table = [name for name, _ in TIES[tie].dense] + list(TIES[tie].factors)
    assert list(dict.fromkeys(names)) == table
    used = {name for path in TIES[tie].paths().values() for name, _ in path}
    assert used == set(table)


@pytest.mark.parametrize("tie, start", [("none", 1), ("all", 1), ("qk", 1), ("kv", 0), ("shareA", 1),
                                        ("shareA_tieKV", 1), ("shareA_tieQK", 2), ("shareB", 0),
                                        ("shareB_tieKV", 0), ("shareB_tieQK", 2)])
def test_the_query_is_cut_after_the_maps_it_shares_with_the_key(tie, start):
    assert query_start(TIES[tie]) == start


def test_tied_projections_share_their_path():
    assert TIES["all"].q == TIES["all"].k == TIES["all"].v
    assert TIES["shareA_tieKV"].k == TIES["shareA_tieKV"].v != TIES["shareA_tieKV"].q
    assert TIES["shareB_tieQK"].q == TIES["shareB_tieQK"].k != TIES["shareB_tieQK"].v
