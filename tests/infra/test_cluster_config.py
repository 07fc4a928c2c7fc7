"""The shipped cluster configs pass the offline check; broken variants are rejected with every error listed."""
from pathlib import Path

import pytest
import yaml

from study.cluster import check_cluster_config, main

INFRA = Path(__file__).resolve().parents[2] / "infra"


def variant(tmp_path, change):
    config = yaml.safe_load((INFRA / "cluster.yaml").read_text())
    change(config)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_shipped_cluster_config_is_valid(capsys):
    assert check_cluster_config(INFRA / "cluster.yaml") == []
    assert main(["check", str(INFRA / "cluster.yaml")]) == 0


def misspell(c):
    c["available_node_types"]["gpu_worker"]["min_wokers"] = 0


def fractional(c):
    c["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5


def unknown_head(c):
    c["head_node_type"] = "ray.head.default"


def top_level_typo(c):
    c["max_worker"] = c.pop("max_workers")


@pytest.mark.parametrize("change,expected", [
    (misspell, "available_node_types.gpu_worker: Additional properties are not allowed ('min_wokers'"),
    (fractional, "available_node_types.gpu_worker.resources.GPU: 0.5 is not of type 'integer'"),
    (unknown_head, "head_node_type: 'ray.head.default' is not one of available_node_types"),
    (top_level_typo, "Additional properties are not allowed ('max_worker'"),
], ids=["misspelt key", "non-integer resources", "unknown head type", "top-level typo"])
def test_broken_variants_are_rejected(tmp_path, change, expected):
    errors = check_cluster_config(variant(tmp_path, change))
    assert any(expected in e for e in errors), errors


def test_every_error_is_listed_not_just_the_first(tmp_path, capsys):
    def everything(c):
        misspell(c)
        fractional(c)
        unknown_head(c)
        c["provider"].pop("type")
    path = variant(tmp_path, everything)
    errors = check_cluster_config(path)
    assert len(errors) >= 4, errors
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "min_wokers" in err and "0.5" in err and "ray.head.default" in err and "'type' is a required" in err


def test_ray_own_validation_runs(tmp_path):
    def too_many_min(c):
        c["available_node_types"]["gpu_worker"]["min_workers"] = 20
        c["available_node_types"]["gpu_worker"]["max_workers"] = 30
    errors = check_cluster_config(variant(tmp_path, too_many_min))
    assert any("max_workers" in e and "min_workers" in e for e in errors), errors


def test_kuberay_job_runs_the_sweep_and_tears_down():
    job = yaml.safe_load((INFRA / "kuberay.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("python -m study.sweep sweeps/") and spec["shutdownAfterJobFinishes"]
    workers = spec["rayClusterSpec"]["workerGroupSpecs"]
    limits = workers[0]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    sweep = spec["entrypoint"].split()[3]
    assert (INFRA.parent / sweep).is_file()
