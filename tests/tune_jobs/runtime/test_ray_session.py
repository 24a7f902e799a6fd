"""A trial that no node of the cluster could ever hold is refused with the numbers, not left pending."""

from __future__ import annotations

import pytest

from trainables.checks import ConfigError
from tune_jobs.runtime.ray_session import check_placeable
from tune_jobs.runtime.resources import DRIVER_RESOURCE
from tune_jobs.runtime.settings import RunSettings

NODES = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 1.0, "GPU": 1.0}]


@pytest.mark.parametrize("settings, message", [
    (RunSettings(threads=3), "threads=3: a trial .* needs 3 CPUs, but the largest node of the cluster has 2"),
    (RunSettings(gpus_per_trial=2), "gpus_per_trial=2: .* but the largest node of the cluster has 1"),
    (RunSettings(workers=2), f"workers=2: data-parallel trials need the custom resource '{DRIVER_RESOURCE}'"),
])
def test_an_unplaceable_trial_is_refused_with_the_numbers(settings, message):
    with pytest.raises(ConfigError, match=message):
        check_placeable(settings, NODES)


def test_a_trial_that_fits_a_node_passes():
    check_placeable(RunSettings(threads=2), NODES)
    check_placeable(RunSettings(gpus_per_trial=0.5), NODES)
    with pytest.raises(ConfigError, match="largest node of the cluster has 0"):
        check_placeable(RunSettings(gpus_per_trial=1), [{"CPU": 2.0}])  # this machine: no GPU at all
