"""The layer under every job: Ray start, the Tuner, storage, searchers, trial records, the Ray Train driver,
the MLflow callback, the job runner. It imports no trial and no job."""
