"""The project's only door to MLflow: tracking URIs, the sweep/trial run lifecycle, tables."""

from mlflow_utils.runs import SweepTracker, figure_link, metric_step, sweep_run
from mlflow_utils.tracking import TrackingError, connect, resolve_tracking_uri

__all__ = ["SweepTracker", "TrackingError", "connect", "figure_link", "metric_step", "resolve_tracking_uri",
           "sweep_run"]
