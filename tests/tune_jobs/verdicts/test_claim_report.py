"""Claims grouped into cells and judged against their cell's seeds (values from the public record)."""

import math

import pandas as pd

from tune_jobs.verdicts import claim_report as cr
from tune_jobs.verdicts.claims import list_claims, load_claim

CLAIMS = [load_claim(name) for name in list_claims()]


def cell_named(cells, stem, steps):
    return next(c for c in cells if c.name == f"{stem} {steps} steps")


def test_the_shipped_claims_fall_into_the_records_cells():
    cells = cr.cells(CLAIMS)
    assert sum(len(c.claims) for c in cells) == len(CLAIMS) == 16
    long_456 = cell_named(cells, "456p", 54000)
    assert sorted(c.train.seed for c in long_456.claims) == [42, 43, 43, 44, 45, 46]
    # the record: on one CUDA GPU seeds 43 and 44 grokked, 42, 45 and 46 did not; on MPS 43 did not
    assert cr.record_counts(long_456, "one CUDA GPU") == (2, 5)
    assert cr.record_counts(long_456, "Apple MPS") == (0, 1)
    assert long_456.protocol() == "100k"
    lr = {c.name: c for c in cells if c.name.startswith("d8ff28")}
    assert len(lr) == 5 and len(next(c for c in cells if "lr0.010" in c.claims[0].name).claims) == 2


def seeds_table(cell, outcomes, horizon=1000):
    """Planted seeds: True grokked at step 100 * (seed + 1) with exact match 1.0, False stayed at 0.1."""
    return pd.DataFrame([{"cell": cell.key, "seed": s, "finished": True, "best_exact_match": 1.0 if ok else 0.1,
                          "protocol_exact_match": 1.0 if ok else 0.05,
                          "grokking_step": 100.0 * (s + 1) if ok else math.nan, "censored_at": horizon}
                         for s, ok in enumerate(outcomes)])


def test_each_claim_is_judged_against_its_cells_planted_seeds():
    cell = cell_named(cr.cells(CLAIMS), "456p", 54000)
    seeds = seeds_table(cell, [True, False, True, False, False])  # 2 of 5 grok here
    claimed = pd.DataFrame([{"claim": "456p-s43", "finished": True, "best_exact_match": 0.2,
                             "protocol_exact_match": 0.3},
                            {"claim": "456p-s42-nogrok", "finished": True, "best_exact_match": 0.1,
                             "protocol_exact_match": 0.0}])
    rows = cr.claim_rows([cell], seeds, claimed, {cell.key: "UNDECIDED"}).set_index("claim")
    grok = rows.loc["456p-s43"]  # at_least 100k: holds on 2 of 5 seeds, not on the claimed seed here
    assert grok["rate"] == 0.4 and grok["holds"] is False and grok["label"] == "REPRODUCED IN DISTRIBUTION (undecided)"
    assert (grok["record_k"], grok["record_n"]) == (2, 5) and grok["record_p"] == 1.0  # 2/5 against 2/5
    nogrok = rows.loc["456p-s42-nogrok"]  # at_most validation 0.5: holds on the 3 seeds that did not grok
    assert nogrok["rate"] == 0.6 and nogrok["label"] == "CLAIM REPRODUCED (undecided)"
    assert math.isnan(rows.loc["456p-s45-nogrok", "claimed_seed_value"])  # its claimed seed did not run
    assert rows.loc["456p-s43-mps", "record_n"] == 1 and math.isnan(rows.loc["456p-s43-mps", "record_p"])
    assert grok["median_grokking_step"] is None  # 2 of 5 grokked: the Kaplan-Meier curve stays below 1/2
    none = cr.claim_rows([cell], seeds_table(cell, [False] * 4), pd.DataFrame()).set_index("claim")
    assert none.loc["456p-s43", "label"] == "NOT REPRODUCED" and none.loc["456p-s43", "rate"] == 0


def test_the_median_grokking_step_comes_from_the_kaplan_meier_curve():
    cell = cr.cells(CLAIMS)[0]
    assert cr.time_to_grok(seeds_table(cell, [True, True, False])) == 200.0  # steps 100, 200 of 3 seeds


def test_the_figures_show_every_claim_and_every_cell():
    cells = cr.cells(CLAIMS)
    seeds = pd.concat([seeds_table(c, [True, False]) for c in cells])
    rows = cr.claim_rows(cells, seeds, pd.DataFrame())
    figure = cr.claimed_vs_measured(rows)
    assert len(figure.axes[0].get_yticklabels()) == 16
    assert figure.axes[0].get_legend() is None and len(figure.legends) == 1  # below the axes, hiding no row
    curves = cr.time_to_grok_curves(seeds.iloc[2:], cells)  # the first cell has no finished seed
    panels = [axes for axes in curves.axes if axes.get_visible()]
    assert [axes.get_title() for axes in panels] == [f"{cells[0].name}\n0/0 grokked"] + \
        [f"{c.name}\n1/2 grokked" for c in cells[1:]]
    assert panels[0].texts[0].get_text() == "no finished seed" and not panels[0].get_lines()
    assert all(axes.get_lines()[0].get_xdata()[-1] == 1000 for axes in panels[1:])  # to the schedule's end


def test_claims_sharing_a_cell_and_a_seed_share_one_claimed_run_scored_on_the_protocol_they_need():
    from types import SimpleNamespace

    from tune_jobs.report import claimed_configs

    long_456 = cell_named(cr.cells(CLAIMS), "456p", 54000)
    planned = claimed_configs([long_456], SimpleNamespace(threads=1))
    by_seed = {seed: config for _, seed, config in planned}
    assert sorted(by_seed) == [42, 43, 44, 45, 46]  # 456p-s43 and 456p-s43-mps: one run of seed 43
    assert by_seed[43]["run"]["protocol"] == "100k"  # the CUDA claim's protocol; the MPS one reads validation
    assert by_seed[42]["run"]["protocol"] == "validation" and by_seed[43]["seeds"] == [43]
    assert by_seed[43]["train"]["mode"] == "faithful"  # the claim's own mode


def test_the_report_names_the_claims_whose_claimed_seed_has_no_value_here():
    from tune_jobs.report_files import markdown, report_blocks
    cell = cell_named(cr.cells(CLAIMS), "456p", 54000)
    claimed = pd.DataFrame([{"claim": "456p-s43", "finished": True, "best_exact_match": 1.0,
                             "protocol_exact_match": 1.0},
                            {"claim": "456p-s44", "finished": False, "best_exact_match": 0.0,  # errored
                             "protocol_exact_match": None}])
    rows = cr.claim_rows([cell], seeds_table(cell, [True, False]), claimed)
    assert rows.set_index("claim").loc["456p-s44", "holds"] is None  # an errored run is no value, not a miss
    spent = {"seed_runs": 2.0, "core_hours": 0.1, "wall_hours": 0.1}
    text = markdown(report_blocks(rows, [cell], {}, spent, "r", claimed_note="still to run"), [])
    line = next(l for l in text.splitlines() if l.startswith("Claimed seeds still to run"))
    assert "456p-s42-nogrok (seed 42)" in line and "456p-s46-nogrok (seed 46)" in line
    assert "456p-s44 (seed 44)" in line
    assert "456p-s43 (seed 43)" not in line  # its claimed seed ran (the MPS claim of seed 43 is separate)
    everything = cr.claim_rows([cell], seeds_table(cell, [True]), pd.DataFrame(
        [{"claim": c.name, "finished": True, "best_exact_match": 0.1, "protocol_exact_match": 0.0}
         for c in cell.claims]))
    assert "Every claimed seed ran in its claim's own mode." in markdown(report_blocks(everything, [cell], {}, spent, "r"), [])


def test_a_cells_seeds_are_censored_at_its_last_step_capped_not_replaced_by_train_steps():
    from tune_jobs.report import censoring_steps

    cells = cr.cells(CLAIMS)
    long_456, short_512 = cell_named(cells, "456p", 54000), cell_named(cells, "512p", 27000)
    assert censoring_steps([long_456, short_512], {}) == {long_456.key: 53999, short_512.key: 26999}
    # --train-steps 40000 stops the 54k cell's seeds early and leaves the 27k cell's schedule alone
    assert censoring_steps([long_456, short_512], {"max_steps": 40000}) == {long_456.key: 39999, short_512.key: 26999}


def test_the_cost_counts_every_seed_runs_own_training_across_resumes_and_the_claimed_seeds():
    from types import SimpleNamespace

    from tune_jobs.report_files import TRAINED_SECONDS, cost, markdown, report_blocks

    job = SimpleNamespace(accounting=SimpleNamespace(seconds=lambda: 900.0))  # this invocation: 15 minutes
    cells_and_claimed = pd.DataFrame({TRAINED_SECONDS: [3600.0, 1800.0, 5400.0]})  # trained before and after a resume
    spent = cost(job, cells_and_claimed, threads=2)
    assert spent == {"seed_runs": 3.0, "core_hours": 6.0, "wall_hours": 0.25}
    cell = cell_named(cr.cells(CLAIMS), "456p", 54000)
    rows = cr.claim_rows([cell], seeds_table(cell, [True]), pd.DataFrame())
    text = markdown(report_blocks(rows, [cell], {}, spent, "r", resumed=True), [])
    assert "3 seed runs, 6.00 core-hours" in text and "0.25 hours of wall time in this invocation (a resumed" in text
    assert "(a resumed" not in markdown(report_blocks(rows, [cell], {}, spent, "r"), [])


def test_the_claimed_seeds_run_shortest_schedule_first():
    from types import SimpleNamespace

    from tune_jobs.report import claimed_configs

    steps = [config["train"]["train_steps"] for _, _, config in claimed_configs(cr.cells(CLAIMS), SimpleNamespace(threads=1))]
    assert steps == sorted(steps) and len(steps) == 14  # 16 claims; seed 43 of 456p and seed 42 of lr 0.010 run once
    assert steps[0] == 27000 and steps[-1] == 100000


def test_the_progress_line_weighs_a_seed_by_the_mean_schedule_of_the_fit():
    from types import SimpleNamespace

    from tune_jobs.report import claimed_configs, mean_schedule

    configs = [config for _, _, config in claimed_configs(cr.cells(CLAIMS), SimpleNamespace(threads=1))]
    # 14 claimed runs: 3 of 27k, 5 of 30k, 5 of 54k and one of 100k steps
    assert mean_schedule(configs, {}) == (3 * 27000 + 5 * 30000 + 5 * 54000 + 100000) / 14
    assert mean_schedule(configs, {"max_steps": 300}) == 300.0


def test_the_html_page_has_the_claim_table_as_an_html_table_and_the_decision_column_only_when_sequential():
    from tune_jobs.report_files import html_page, markdown, report_blocks
    cell = cell_named(cr.cells(CLAIMS), "456p", 54000)
    spent = {"seed_runs": 2.0, "core_hours": 0.1, "wall_hours": 0.1}
    fixed = cr.claim_rows([cell], seeds_table(cell, [True, False]), pd.DataFrame())  # SEEDS=n: no decision
    page = html_page(report_blocks(fixed, [cell], {"torch_version": "2.13.0+cpu"}, spent, "r<1>"), {"f.png": b"png"})
    assert page.count("<tr>") == len(cell.claims) and "<th>claimed seed value</th>" in page and "<pre>" not in page
    assert "<td>validation exact match &lt;= 0.5</td>" in page  # the rule, escaped
    assert "<h1>Reproducibility report <code>r&lt;1&gt;</code></h1>" in page and "<li>torch_version: 2.13.0+cpu</li>" in page
    assert "decision" not in page and "| decision |" not in markdown(report_blocks(fixed, [cell], {}, spent, "r"), [])
    assert page.count("data:image/png;base64,") == 1
    sequential = cr.claim_rows([cell], seeds_table(cell, [True, False]), pd.DataFrame(), {cell.key: "UNDECIDED"})
    assert "<th>decision</th>" in html_page(report_blocks(sequential, [cell], {}, spent, "r"), {})
    assert "| decision |" in markdown(report_blocks(sequential, [cell], {}, spent, "r"), [])
