"""Reading a finished job back from MLflow, for the tests that assert what landed there."""

from mlflow.tracking import MlflowClient


def job_runs(tracking_uri: str, experiment: str):
    """(client, parent run, child runs) of the single job logged to ``experiment``."""
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("role") == "sweep")
    return client, parent, [r for r in runs if r.data.tags.get("role") == "trial"]
