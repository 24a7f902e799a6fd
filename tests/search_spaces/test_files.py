"""Space files and ``--set``: a user edits a space without Python; bad values name the file or the assignment."""

import pytest

from search_spaces import Choice, LogUniform, SearchSpaceError, load_space, parse_assignment, with_sets
from trainables.addition.config import ModelConfig, TrainConfig

BUILDERS = {"model": ModelConfig, "train": TrainConfig}


def _write(tmp_path, text, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_space_file_reads_as_data(tmp_path):
    path = _write(tmp_path, 'description = "d"\nseeds = [3, 4]\n[model]\nd_model = {choice = [7, 8]}\n'
                            '[train]\nlr = {loguniform = [0.005, 0.03]}\ncurriculum = [[0, 1, 3]]\n'
                            '[[points_to_evaluate]]\nlabel = "x"\nmodel = {d_model = 8}\n')
    space = load_space(path, "addition")
    assert space.name == "mine" and space.seeds == (3, 4) and space.source.endswith("mine.toml")
    assert space.sections["model"]["d_model"] == Choice((7, 8))
    assert space.sections["train"]["lr"] == LogUniform(0.005, 0.03)
    assert space.points_to_evaluate == ({"model": {"d_model": 8}},)
    assert validate_ok(space)


def validate_ok(space):
    return with_sets(space, (), BUILDERS) is space


@pytest.mark.parametrize("text, message", [
    ("seeds = [0]\n[model]\nd_model = 6\nqkv_rank = 6\n", r"mine.toml\), section 'model': qkv_rank=6 must be smaller than d_model=6"),
    ("seeds = []\n", "seeds must be a non-empty list of integers"),
    ("seeds = [0]\nd_model = 8\n", "top-level keys are description, seeds"),
    ("seeds = [0]\n[model]\nd_model = {uniform = [1, 2]}\n", "model.d_model: a dimension is one of choice"),
    ("seeds = [0\n", "not valid TOML"),
    ("seeds = [0]\n[train]\nlr = inf\n", "lr must be a finite number, got inf"),
])
def test_a_bad_space_file_names_the_file_the_field_and_the_value(tmp_path, text, message):
    with pytest.raises(SearchSpaceError, match=message) as caught:
        with_sets(load_space(_write(tmp_path, text), "addition"), (), BUILDERS)
    assert "mine.toml" in str(caught.value)


def test_an_unknown_space_lists_the_shipped_ones():
    with pytest.raises(SearchSpaceError, match=r"search space 'nope' not found .*default, full, lowrank, short, smoke"):
        load_space("nope", "addition")


def test_set_fixes_or_reranges_a_field_and_drops_it_from_the_points():
    space = with_sets(load_space("default", "addition"),
                      ("train.lr=0.015", "model.d_model={choice=[7,8,16]}", 'train.mode="faithful"', "train.mode=fast"),
                      BUILDERS)
    assert space.sections["train"]["lr"] == 0.015 and space.sections["train"]["mode"] == "fast"
    assert space.sections["model"]["d_model"] == Choice((7, 8, 16))
    assert all("lr" not in point["train"] for point in space.points_to_evaluate)
    # the record's fast learner's d_model 8 is outside the new choice: it is rejected, naming the assignment
    with pytest.raises(SearchSpaceError, match=r"--set model.d_model=\{choice=\[7,9\]\}: .*d_model=8, outside"):
        with_sets(load_space("default", "addition"), ("model.d_model={choice=[7,9]}",), BUILDERS)


@pytest.mark.parametrize("assignment, message", [
    ("train.lr=-1", r"--set train.lr=-1: .*lr must be > 0, got -1"),
    ("train.lr=nan", r"--set train.lr=nan: .*lr must be a finite number, got nan"),
    ("model.qkv_rank=8", r"--set model.qkv_rank=8: .*qkv_rank=8 must be smaller than d_model=7"),
    ("model.d_modle=8", r"--set model.d_modle=8: .*unexpected keyword argument 'd_modle'"),
    ("optim.lr=1", r"--set optim.lr=1: unknown section 'optim'; sections: model, train"),
    ("lr=0.1", r"--set 'lr=0.1': expected section.field=value"),
])
def test_a_bad_set_names_the_assignment_the_field_and_the_value(assignment, message):
    with pytest.raises(SearchSpaceError, match=message):
        with_sets(load_space("default", "addition"), (assignment,), BUILDERS)


def test_assignment_values_are_toml_or_text():
    assert parse_assignment("train.curriculum=[[0,1,3]]") == ("train", "curriculum", [[0, 1, 3]])
    assert parse_assignment("train.device=cuda") == ("train", "device", "cuda")
    assert parse_assignment("model.use_rmsnorm=true") == ("model", "use_rmsnorm", True)
