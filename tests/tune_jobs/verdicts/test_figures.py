"""The parent run's figures draw what the tables hold: rates and Wilson bars, every seed's curve, grokking steps."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from matplotlib.colors import to_hex

from tune_jobs.verdicts import figures, lm, seeds
from tune_jobs.verdicts.claims import load_claim


def addition_trials() -> pd.DataFrame:
    """Config a: 2 of 3 seeds grok (at 200 and 300); b: none; c: every seed crashed."""
    rows = []
    for name, cid, params, results in (
            ("d8-ff28-lr0.015", "a", 1128, [(1.0, 200), (0.1, None), (1.0, 300)]),
            ("d4-ff8-rms-lr0.01", "b", 250, [(0.0, None)] * 3),
            ("d4-ff8-lr0.02", "c", 246, [None] * 3)):
        for seed, result in enumerate(results):
            best, step = result if result else (math.nan, None)
            rows.append({"name": name, "config_id": cid, "seed": seed, "finished": result is not None,
                         "status": "finished" if result else "errored", "best_exact_match": best,
                         "grokking_step": step, "parameters": params, "train/train_steps": 400})
    return pd.DataFrame(rows)


def addition_curves(trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for row in trials[trials["finished"]].itertuples():
        for step in (0, 100, 200, 300, 399):
            value = 1.0 if row.grokking_step is not None and step >= row.grokking_step else 0.0
            rows.append({"name": row.name, "config_id": row.config_id, "seed": row.seed,
                         "trial_id": f"{row.config_id}{row.seed}", "step": step, "value": value})
    return pd.DataFrame(rows)


@pytest.fixture
def tables():
    trials = addition_trials()
    return seeds.verdict_table(trials), trials, addition_curves(trials)


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_labels_carry_the_readable_name_and_the_parameter_count():
    assert figures.config_label(pd.Series({"name": "d8-ff28-lr0.015", "parameters": 1128})) == \
        "d8-ff28-lr0.015 (1,128 params)"
    assert figures.config_label(pd.Series({"name": "v512-d64-lr0.003", "model/parameters": 61_000.0})) == \
        "v512-d64-lr0.003 (61,000 params)"
    assert figures.config_label(pd.Series({"config_id": "abc", "parameters": math.nan})) == "abc"


def test_success_rates_draws_each_rate_with_its_wilson_interval(tables):
    verdicts, _, _ = tables
    figure = figures.success_rates(verdicts)
    axes = figure.axes[0]
    labels = [t.get_text() for t in axes.get_yticklabels()]
    # best on top: matplotlib's y grows upwards, so the first verdict row is the last tick
    assert labels == ["d4-ff8-lr0.02 (246 params)", "d4-ff8-rms-lr0.01 (250 params)", "d8-ff28-lr0.015 (1,128 params)"]
    widths = sorted(round(bar.get_width(), 6) for bar in axes.patches)
    assert widths == [0.0, round(2 / 3, 6)]  # the crashed configuration has no bar
    low, high = seeds.wilson_interval(2, 3)
    segments = [collection.get_segments() for collection in axes.collections]
    spans = sorted((round(s[0][0], 6), round(s[1][0], 6)) for group in segments for s in group)
    assert (round(low, 6), round(high, 6)) in spans
    texts = [t.get_text() for t in axes.texts]
    assert "2/3 SEED-SENSITIVE" in texts and any(t.startswith("no finished seed: 0/0 INCONCLUSIVE") for t in texts)
    assert png_bytes(figure).startswith(b"\x89PNG")


def test_learning_curves_draw_every_seed_in_one_panel_per_configuration(tables):
    verdicts, _, curves = tables
    figure = figures.learning_curves(curves, verdicts, "val/exact_match", threshold=0.99)
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert len(visible) == 3
    first = visible[0]  # the best configuration, a
    assert first.get_title().startswith("d8-ff28-lr0.015 (1,128 params)")
    seed_lines = [line for line in first.get_lines() if line.get_label().startswith("s")]
    assert [line.get_label() for line in seed_lines] == ["s0", "s1", "s2"]
    assert list(seed_lines[0].get_ydata()) == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert any(list(line.get_ydata()) == [0.99, 0.99] for line in first.get_lines())
    assert len([line for line in visible[2].get_lines() if line.get_label().startswith("s")]) == 0  # crashed


def test_learning_curves_keep_the_first_panels_only(tables):
    verdicts, _, curves = tables
    figure = figures.learning_curves(curves, verdicts, "val/exact_match", max_panels=2)
    assert len([axes for axes in figure.axes if axes.get_visible()]) == 2
    assert "first 2 of 3" in figure.get_suptitle()


def test_grokking_steps_mark_each_seed_and_those_that_never_grokked(tables):
    verdicts, trials, curves = tables
    horizon = figures.horizon_of(curves, trials)
    assert horizon == 400
    axes = figures.grokking_steps(trials, verdicts, horizon).axes[0]
    points = [[(x, round(y, 6)) for x, y in c.get_offsets()] for c in axes.collections if len(c.get_offsets())]
    top = len(verdicts) - 1  # config a is drawn at the top row, its seeds spread around it
    assert [(200.0, top - 0.25), (300.0, top + 0.25)] in points  # seeds 0 and 2 grokked
    assert [(400.0, top)] in points  # seed 1 did not: an 'x' at the schedule's end
    assert [(400.0, top - 1.25), (400.0, top - 1), (400.0, top - 0.75)] in points  # config b: no seed grokked
    assert {t.get_text() for t in axes.texts} == {"s0", "s2"}
    # the legend names each kind of marker drawn, once, whichever row drew it first
    assert sorted(t.get_text() for t in axes.get_legend().get_texts()) == ["grokking step", "not within the schedule"]
    none_grokked = trials.assign(grokking_step=None)
    legend = figures.grokking_steps(none_grokked, verdicts, horizon).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["not within the schedule"]


def png_width(figure) -> int:
    """The saved PNG's width in pixels (its IHDR chunk), as MLflow's log_figure saves it."""
    return int.from_bytes(png_bytes(figure)[16:20], "big")


@pytest.mark.parametrize("configs", [1, 3, 12])
def test_every_figure_fits_the_parent_runs_page(tables, configs):
    verdicts, trials, curves = tables
    many = pd.concat([verdicts] * 4, ignore_index=True).head(configs)
    lm_verdicts, lm_trials = lm_tables([320 + v for v in range(configs)])
    drawn = [figures.learning_curves(curves, many, "val/exact_match"), figures.success_rates(many),
             figures.grokking_steps(trials, many, 400.0), figures.bits_per_byte(lm_trials, lm_verdicts)]
    for figure in drawn:
        assert figure.get_size_inches()[0] * figure.dpi <= 1000
    assert max(png_width(figure) for figure in drawn) <= 1000


def lm_tables(vocabs):
    rows = [{"name": f"v{v}-d64", "config_id": f"c{v}", "seed": s, "finished": True, "bits_per_byte": 2.0 + s / 10,
             "flags": "", "reasons": "", "collapsed_sampled": 0, "completions_sampled": 4, "tokenizer/vocab_size": v,
             "model/parameters": 1000.0 * v} for v in vocabs for s in range(3)]
    trials = pd.DataFrame(rows)
    return lm.verdict_table(trials), trials


def test_bits_per_byte_is_drawn_against_vocabulary_size_when_it_varies():
    verdicts, trials = lm_tables([320, 1024])
    axes = figures.bits_per_byte(trials, verdicts).axes[0]
    assert axes.get_xscale() == "log"
    dots = sorted({tuple(p) for c in axes.collections for p in c.get_offsets()})
    assert (320.0, 2.0) in dots and (1024.0, 2.2) in [(x, round(y, 6)) for x, y in dots]


def test_bits_per_byte_names_every_configuration_in_its_legend():
    verdicts, trials = lm_tables([320, 512, 1024, 2048])
    crashed = trials.assign(finished=trials["tokenizer/vocab_size"] != 2048)  # one configuration without a seed
    legend = figures.bits_per_byte(crashed, verdicts).axes[0].get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == len(verdicts) == 4
    assert [label.split(" (")[0] for label in labels] == verdicts["name"].tolist()
    assert labels[-1].endswith("no finished seed")


def test_bits_per_byte_uses_one_position_per_configuration_when_the_vocabulary_is_fixed():
    verdicts, trials = lm_tables([512])
    axes = figures.bits_per_byte(trials, verdicts).axes[0]
    assert axes.get_xscale() == "linear"
    assert [t.get_text() for t in axes.get_xticklabels()] == ["v512-d64 (512,000 params)"]


def test_claim_values_draw_each_run_against_the_claim():
    claim = load_claim("512p-s42")
    runs = pd.DataFrame({"role": ["claimed-a", "claimed-b", "other"], "seed": [42, 42, 43],
                         "finished": [True, True, False], "measured": [0.99990, 0.5, math.nan]})
    axes = figures.claim_values(runs, claim).axes[0]
    assert [round(bar.get_height(), 5) for bar in axes.patches] == [0.9999, 0.5, 0.0]
    assert [to_hex(bar.get_facecolor()) for bar in axes.patches] == ["#2e7d32", "#c62828", figures.GREY]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["claimed-a s42", "claimed-b s42", "other s43\n(no value)"]
    assert [t.get_text() for t in axes.texts] == ["0.9999", "0.5"]  # no label floats over the empty bar
    assert sorted(round(line.get_ydata()[0], 6) for line in axes.get_lines()) == \
        sorted([round(claim.claimed_value, 6), round(claim.bound(), 6)])
