"""Retake the README's screenshots (``docs/ui-*.png``) from a sweep's MLflow store, in headless Chromium.

    .venv/bin/python -m tests.ui.screenshots --db /path/mlruns.db --experiment addition-sweep --out docs

Serves the store with ``mlflow server`` on 127.0.0.1 (``tests/ui/browser.py``), opens the newest sweep's
runs view with its parent expanded, its by-configuration chart of ``val/exact_match`` and the parent's
page with the description opened, and saves ``ui-runs-view.png``, ``ui-grouped-chart.png`` and
``ui-parent-page.png`` in ``--out``. Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mlflow import MlflowClient

from mlflow_utils.ui import run_page
from mlflow_utils.views import RUNS_VIEW, by_config_key, runs_view
from tests.ui.browser import chromium, close_assistant, mlflow_server, wait_for

SETTLE_S = 3.0
"""Seconds left for the page's charts and images to draw after the element waited for appeared."""


def take(db: Path, experiment: str, out: Path) -> list[Path]:
    """Save the three screenshots of the newest sweep of ``experiment`` in ``db``; returns their paths."""
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r} in {db}")
    parents = client.search_runs([exp.experiment_id], "tags.role = 'sweep'", order_by=["start_time DESC"], max_results=1)
    if not parents:
        raise SystemExit(f"no sweep parent run in experiment {experiment!r} of {db}")
    parent = parents[0]
    name = parent.info.run_name
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with mlflow_server(db, db.parent / "mlartifacts", out / "mlflow-server.log") as url, chromium(1400, 1000) as driver:
        driver.get(runs_view(url, exp.experiment_id, RUNS_VIEW))
        link = wait_for(lambda: driver.find_element("xpath", f"//a[.//text()='{name}']"), "the parent run")
        close_assistant(driver)
        cell = link.find_element("xpath", "./ancestor::*[@role='gridcell' or contains(@class,'ag-cell')][1]")
        cell.find_element("css selector", "button").click()
        time.sleep(SETTLE_S)
        saved.append(out / "ui-runs-view.png")
        driver.save_screenshot(str(saved[-1]))

        driver.get(runs_view(url, exp.experiment_id, by_config_key(parent.data.tags["sweep_id"])) + "&compareRunsMode=CHART")
        box = wait_for(lambda: driver.find_element("css selector", "input[placeholder='Search metric charts']"), "charts")
        close_assistant(driver)
        box.send_keys("val/exact_match")
        time.sleep(SETTLE_S)
        saved.append(out / "ui-grouped-chart.png")
        driver.save_screenshot(str(saved[-1]))

        driver.set_window_size(1400, 2400)
        driver.get(run_page(url, exp.experiment_id, parent.info.run_id))
        wait_for(lambda: "Best configuration:" in driver.find_element("tag name", "body").text, "the description")
        close_assistant(driver)
        for more in driver.find_elements("xpath", "//*[text()='Show more']")[:1]:
            more.click()
        time.sleep(SETTLE_S)
        saved.append(out / "ui-parent-page.png")
        driver.save_screenshot(str(saved[-1]))
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the sweep's SQLite store (mlartifacts/ beside it)")
    parser.add_argument("--experiment", default="addition-sweep", help="MLflow experiment of the sweep")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNG files")
    args = parser.parse_args()
    for path in take(args.db.resolve(), args.experiment, args.out):
        print(path)


if __name__ == "__main__":
    main()
