"""The deployment manifests in deploy/: they parse, the launcher config passes Ray's own schema, the RayJob
has the fields KubeRay requires, and every command they run names a real module and only flags its CLI
(or `ray start`) accepts, so renaming a flag breaks this test rather than a cluster."""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import tyro
import yaml

from trainables.paths import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def sweep_argv(command: str) -> tuple[str, list[str]]:
    """(module, its arguments) of a ``python -m <module> ...`` command line."""
    words = shlex.split(command)
    module_at = words.index("-m") + 1
    return words[module_at], words[module_at + 1:]


def parse_sweep_args(command: str):
    """Parse ``command``'s arguments with the sweep's real tyro parser (SystemExit on an unknown flag)."""
    from tune_jobs.sweep_addition import SweepArgs

    module, argv = sweep_argv(command)
    assert module == "tune_jobs.sweep_addition"
    assert importlib.util.find_spec(module) is not None, f"{module} is not importable"
    return tyro.cli(SweepArgs, args=argv)


def test_cluster_yaml_validates_against_ray_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = load("cluster.yaml")
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    assert {"cpu_worker", "gpu_worker"} <= set(config["available_node_types"])
    assert config["available_node_types"]["gpu_worker"]["resources"]["GPU"] == 1


def test_cluster_yaml_start_commands_use_real_ray_start_flags():
    from ray.scripts.scripts import start

    known = {opt for param in start.params for opt in param.opts}
    config = load("cluster.yaml")
    commands = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    starts = [c for c in commands if " start " in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in starts)
    for command in starts:
        flags = {w.split("=")[0] for w in shlex.split(command.split(" start ", 1)[1]) if w.startswith("--")}
        assert flags <= known, f"unknown ray start flags {flags - known}"


def test_cluster_yaml_sets_up_the_project_and_its_sweep_command_parses():
    config = load("cluster.yaml")
    assert any("make venv" in c for c in config["setup_commands"])
    args = parse_sweep_args(config["metadata"]["sweep_command"])
    assert args.ray_address == "auto"
    assert args.tracking_uri.startswith("http://")


def test_rayjob_has_the_fields_kuberay_requires():
    job = load("rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert job["metadata"]["name"] and spec["entrypoint"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["submissionMode"] == "K8sJobMode"  # the entrypoint runs on the head, RAY_ADDRESS set by Ray
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    head = cluster["headGroupSpec"]
    assert "rayStartParams" in head and head["template"]["spec"]["containers"][0]["image"]
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["template"]["spec"]["containers"][0]["image"]


def test_rayjob_entrypoint_parses_with_the_real_cli_and_uses_shared_storage():
    job = load("rayjob.yaml")
    args = parse_sweep_args(job["spec"]["entrypoint"])
    assert args.tracking_uri == "http://mlflow:5000"
    mounts = [m["mountPath"] for pod in (job["spec"]["rayClusterSpec"]["headGroupSpec"],
                                         *job["spec"]["rayClusterSpec"]["workerGroupSpecs"])
              for m in pod["template"]["spec"]["containers"][0]["volumeMounts"]]
    assert all(str(args.storage_path).startswith(mount) for mount in mounts), (args.storage_path, mounts)


def test_a_renamed_flag_is_caught():
    with pytest.raises(SystemExit):
        parse_sweep_args("python -m tune_jobs.sweep_addition --num-config 4")
