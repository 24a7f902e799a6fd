"""A seed stopped once solved carries its last values to its schedule's end, marked, and the
learning-curve figure says where and why it stopped."""

import pandas as pd

from tune_jobs.trials.addition import carried_forward
from tune_jobs.verdicts import figures


def test_a_solved_seed_stopped_early_is_carried_to_every_later_evaluation_and_the_last_step_marked():
    last = {"step": 11999, "val/exact_match": 1.0, "val/best_exact_match": 1.0, "success": 1.0, "objective": 1.001}
    carried = carried_forward(last, 27000, 1000)
    assert [c["step"] for c in carried] == [*range(12000, 27000, 1000), 26999]
    assert all(c["val/carried_forward"] == 1.0 and c["val/stopped_at_step"] == 11999.0 for c in carried)
    assert all({k: c[k] for k in last if k != "step"} == {k: v for k, v in last.items() if k != "step"} for c in carried)
    assert [c["step"] for c in carried_forward({**last, "step": 26000}, 27000, 1000)] == [26999]
    assert carried_forward({**last, "step": 26999}, 27000, 1000) == []  # it reached the end
    assert carried_forward({**last, "success": 0.0}, 27000, 1000) == []  # not solved: nothing to carry
    assert carried_forward(last, 27000, 1000, max_steps=12000) == []  # max_steps stopped it, not the rule


def test_the_learning_curve_marks_the_stop_and_dots_the_carried_value():
    curves = pd.DataFrame({"name": "c", "config_id": "a", "seed": 0, "trial_id": "t0",
                           "step": [0, 100, 200, 399], "value": [0.0, 1.0, 1.0, 1.0],
                           "carried": [False, False, False, True]})
    verdicts = pd.DataFrame([{"name": "c", "config_id": "a", "verdict": "REPRODUCIBLE"}])
    axes = figures.learning_curves(curves, verdicts, "val/exact_match").axes[0]
    (seed,) = [line for line in axes.get_lines() if line.get_label().startswith("s0")]
    assert seed.get_label() == "s0 (solved, stopped at 200)" and list(seed.get_xdata()) == [0, 100, 200]
    dotted = [line for line in axes.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and list(dotted[0].get_xdata()) == [200, 399]
