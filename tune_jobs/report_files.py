"""The claim report's files and MLflow record: ``reports/<name>/report.md``, ``report.html`` (figures
embedded as data URIs, readable offline), the figures as PNG files, and the parent run's table,
figures and description (``role=report``)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from tune_jobs.runtime.report import log_figures, markdown_table, shown_text
from tune_jobs.verdicts import claim_report as cr

COLUMNS = ("claim", "label", "rule", "record", "claimed_value", "claimed_seed", "claimed_seed_value", "seeds_run",
           "rate", "wilson_low", "wilson_high", "record_k", "record_n", "record_p", "median_grokking_step", "decision")
"""Columns of the report's table, in order."""
ENVIRONMENT = ("device", "device_name", "device_kind", "torch_version", "threads", "git_commit", "git_dirty",
               "hostname")
"""Provenance fields (``env/*`` of each run) the report states, each run's distinct values."""
TRAINED_SECONDS = "trained_seconds"
"""Column of a seed run's own training time in seconds (Ray Tune's ``time_total_s``, which carries over a
restore, so that a run resumed across invocations counts its whole training)."""


def environment(seeds: pd.DataFrame) -> dict[str, str]:
    """Each ``ENVIRONMENT`` field's distinct values over the seed runs, joined by ' | '."""
    return {k: " | ".join(sorted({str(v) for v in seeds[k].dropna()})) for k in ENVIRONMENT if k in seeds}


def cost(job: Any, runs: pd.DataFrame, threads: int) -> dict[str, float]:
    """What the report cost: its seed runs (the cells' and the claimed seeds', one row each), their
    core-hours (each run's own training time, ``TRAINED_SECONDS``, x ``threads``: a resumed report counts
    its earlier invocations' training too) and this invocation's wall hours."""
    return {"seed_runs": float(len(runs)), "core_hours": float(runs[TRAINED_SECONDS].sum()) * threads / 3600,
            "wall_hours": job.accounting.seconds() / 3600}


def missing_claimed(rows: pd.DataFrame) -> list[str]:
    """'<claim> (seed <n>)' for each claim whose claimed seed has no value here (``holds`` None)."""
    return [f"{r.claim} (seed {r.claimed_seed})" for r in rows.itertuples() if r.holds is None or pd.isna(r.holds)]


def report_blocks(rows: pd.DataFrame, cell_list: Sequence[cr.Cell], env: dict[str, str], spent: dict[str, float],
                  name: str, claimed_note: str = "without a finished run", resumed: bool = False
                  ) -> list[tuple[str, Any]]:
    """The report up to its figures as (kind, content) blocks, which ``markdown`` and ``html_page`` render:
    'h1' and 'h2' (a heading), 'p' (a paragraph; `code` spans), 'table' (the claim table's ``COLUMNS``,
    ``decision`` only where a cell had a sequential decision: fixed seeds have none) and 'list' (items).
    What ran, the table, the claims whose claimed seed has no value here (``claimed_note`` says why:
    still to run, not asked for, or without a finished run), the environment and the cost (``cost``;
    ``resumed``: this invocation continued an earlier one)."""
    cells = "; ".join(f"{c.name} ({len(c.claims)} claim{'' if len(c.claims) == 1 else 's'})" for c in cell_list)
    missing = missing_claimed(rows)
    sequential = "decision" in rows and rows["decision"].astype(bool).any()
    table = rows[[c for c in COLUMNS if c in rows and (c != "decision" or sequential)]]
    return [("h1", f"Reproducibility report `{name}`"),
            ("p", f"{len(rows)} claims in {len(cell_list)} cells: {cells}."),
            ("p", "Label: CLAIM REPRODUCED (the claimed seed meets the claim here), REPRODUCED IN DISTRIBUTION (the "
                  "claim holds for a fraction `rate` of the cell's seeds), NOT REPRODUCED; '(undecided)' where the "
                  "cell's sequential seeds ran out. `record_k/record_n`: the record's grokked claims of the cell on "
                  "that device; `record_p`: Fisher's exact test of it against the cell's grokked seeds here."),
            ("table", table),
            ("p", f"Claimed seeds {claimed_note}: {', '.join(missing)}." if missing else
                  "Every claimed seed ran in its claim's own mode."),
            ("h2", "Environment"), ("list", [f"{k}: {v}" for k, v in env.items()]),
            ("h2", "Cost"),
            ("list", [f"{spent['seed_runs']:.0f} seed runs, {spent['core_hours']:.2f} core-hours (the runs' own "
                      f"training time x threads, every invocation of the report)",
                      f"{spent['wall_hours']:.2f} hours of wall time in this invocation"
                      + (" (a resumed report: its earlier invocations' wall time is not in it)" if resumed else "")])]


def markdown(blocks: Sequence[tuple[str, Any]], figures: Sequence[str]) -> str:
    """The report as Markdown: ``report_blocks``, then the ``figures`` (file names)."""
    lines: list[str] = []
    for kind, content in blocks:
        if kind == "table":
            lines.append(markdown_table(content, list(content.columns), max_rows=len(content)))
        elif kind == "list":
            lines.extend(f"- {item}" for item in content)
        else:
            lines.append({"h1": "# ", "h2": "## ", "p": ""}[kind] + content)
        lines.append("")
    lines += ["## Figures", "", *[f"![{f}]({f})" for f in figures]]
    return "\n".join(lines) + "\n"


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;font-size:13px}"
         "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}tr:nth-child(even){background:#f6f6f6}"
         "td:nth-child(-n+2){white-space:nowrap}code{background:#eee;padding:0 3px}img{max-width:100%}")
"""The HTML page's stylesheet (inline: the page is one file, readable offline; a claim's name and label
on one line)."""


def _inline(text: str) -> str:
    """A paragraph's text as HTML: escaped, its `code` spans as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def html_page(blocks: Sequence[tuple[str, Any]], images: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page: ``report_blocks`` as headings, paragraphs, an HTML
    table (``DataFrame.to_html``, escaped; headings with spaces for underscores, so they wrap) and
    lists, then each figure embedded as a data URI."""
    body = []
    for kind, content in blocks:
        if kind == "table":
            shown = content.map(shown_text).rename(columns=lambda column: column.replace("_", " "))  # wraps
            body.append(shown.to_html(index=False, border=0, escape=True))
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in content) + "</ul>")
        else:
            body.append(f"<{kind}>{_inline(content)}</{kind}>")
    body.append("<h2>Figures</h2>")
    for file_name, data in images.items():
        body.append(f'<h3>{html.escape(file_name)}</h3><img alt="{html.escape(file_name)}" '
                    f'src="data:image/png;base64,{base64.b64encode(data).decode()}">')
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>reprotune report</title><style>{STYLE}</style>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(job: Any, args: Any, rows: pd.DataFrame, seeds: pd.DataFrame, cell_list: Sequence[cr.Cell],
                 final: bool = True, claimed_note: str = "without a finished run",
                 claimed_runs: pd.DataFrame | None = None) -> Path:
    """Write ``<reports_dir>/<job name>/`` (report.md, report.html, claims.csv, the figures) and the parent
    run's record (its tags: ``claim.<claim>`` -> its label and ``claim_labels``, the count of each label,
    the one the runs table can show, its columns holding no '.'; its description and figures; the
    ``claims`` table only when ``final``: MLflow's ``log_table`` appends to a table already logged); returns the folder. ``seeds``: the cells' seed
    runs; ``claimed_runs``: the claimed seeds' runs (both ``tune_jobs.report.seed_rows``), counted in the cost."""
    folder = Path(args.reports_dir) / job.name
    folder.mkdir(parents=True, exist_ok=True)
    figures = {"claimed_vs_measured.png": cr.claimed_vs_measured(rows),
               "time_to_grok.png": cr.time_to_grok_curves(seeds, cell_list)}
    images = {name: _png(figure) for name, figure in figures.items()}
    for name, data in images.items():
        (folder / name).write_bytes(data)
    runs = seeds if claimed_runs is None else pd.concat([seeds, claimed_runs], ignore_index=True)
    env, spent = environment(runs), cost(job, runs, args.threads)
    blocks = report_blocks(rows, cell_list, env, spent, job.name, claimed_note, resumed=bool(args.resume))
    text = markdown(blocks, list(images))
    (folder / "report.md").write_text(text)
    (folder / "report.html").write_text(html_page(blocks, images))
    rows.to_csv(folder / "claims.csv", index=False)
    tracker = job.tracker
    if final:
        tracker.log_table(rows, "claims")
    links = log_figures(tracker, figures)
    labels = ", ".join(f"{count} {label}" for label, count in rows["label"].value_counts().items())
    tracker.set_tags(tracker.parent_run_id, {**{f"claim.{r.claim}": r.label for r in rows.itertuples()},
                                              "report.folder": str(folder), "claim_labels": labels})
    tracker.log_summary(tracker.parent_run_id, {f"report/{k}": v for k, v in spent.items()})
    tracker.set_description(tracker.parent_run_id, "\n".join([text.split("## Figures")[0], *links]))
    return folder
