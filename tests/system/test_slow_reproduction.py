"""Full-length reproduction (about 20 minutes on 2 cores): `make test-slow`."""

import pytest
from mlflow.tracking import MlflowClient

from tune_jobs.verdicts.claims import CLAIM_REPRODUCED, IN_DISTRIBUTION, NOT_REPRODUCED
from tune_jobs.reproduce import ReproduceArgs, run_reproduction

pytestmark = pytest.mark.slow


def test_512p_claim_at_full_length_is_deterministic_on_this_machine(tmp_path):
    """The claimed seed twice over all 27,000 faithful steps: bit-identical traces on one machine."""
    ray = pytest.importorskip("ray")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = ReproduceArgs(claim="512p-s42", seeds=0, name="slow-512p", tracking_uri=uri, storage_path=tmp_path / "ray")
    try:
        verdict, runs = run_reproduction(args)
    finally:
        ray.shutdown()
    assert verdict.deterministic and verdict.first_difference_step is None
    assert list(runs["trace_length"]) == [27_000, 27_000]
    assert verdict.verdict in (CLAIM_REPRODUCED, IN_DISTRIBUTION, NOT_REPRODUCED)
    client = MlflowClient(uri)
    parent = next(r for r in client.search_runs([client.get_experiment_by_name("addition-reproduce").experiment_id])
                  if r.data.tags.get("role") == "sweep")
    assert parent.data.tags["claim.verdict"] == verdict.verdict
