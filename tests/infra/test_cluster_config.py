"""The shipped cluster configs pass the offline check; broken variants are rejected with every error listed."""
from pathlib import Path

import pytest
import yaml

from study.ops.cluster import check_cluster_config, main

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


# --- tracking durability and authentication -----------------------------------------------------------------
def test_shipped_configs_give_durable_authenticated_tracking():
    from study.ops.cluster import check

    assert check([INFRA / "cluster.yaml"]) == ([], [])
    assert check([INFRA / "mlflow.yaml", INFRA / "kuberay.yaml"]) == ([], [])


def sqlite_on_the_head(c):
    c["head_start_ray_commands"][-1] = ("nohup ~/venv/bin/mlflow server --backend-store-uri "
                                        "sqlite:////home/ubuntu/mlflow/mlflow.db --host 0.0.0.0 --port 5000 &")


def test_tracking_that_dies_with_the_head_is_warned_about(tmp_path):
    from study.ops.cluster import check

    errors, warnings = check([variant(tmp_path, sqlite_on_the_head)])
    assert errors == []
    text = "\n".join(warnings)
    assert "sqlite:////home/ubuntu/mlflow/mlflow.db lives on the server's own disk" in text
    assert "no authentication" in text and "every interface" in text
    assert len(warnings) == 3  # `pkill -f 'mlflow server'` only names the server: no warning for it


def manifests(tmp_path, change):
    tracking = yaml.safe_load((INFRA / "mlflow.yaml").read_text())
    job = yaml.safe_load((INFRA / "kuberay.yaml").read_text())
    change(tracking, job)
    paths = [tmp_path / "mlflow.yaml", tmp_path / "kuberay.yaml"]
    for path, document in zip(paths, (tracking, job)):
        path.write_text(yaml.safe_dump(document))
    return paths


def item(tracking, kind, name):
    return next(o for o in tracking["items"] if o["kind"] == kind and o["metadata"]["name"] == name)


def postgres_on_empty_dir(tracking, job):
    item(tracking, "StatefulSet", "postgres")["spec"]["template"]["spec"]["volumes"][0] = {"name": "data",
                                                                                           "emptyDir": {}}


def no_auth(tracking, job):
    container = item(tracking, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    container["args"] = [container["args"][0].replace("--app-name basic-auth", "")]


def no_credentials(tracking, job):
    workers = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    workers["env"] = [e for e in workers["env"] if not e["name"].startswith("MLFLOW_TRACKING")]


def wrong_service(tracking, job):
    job["spec"]["entrypoint"] = job["spec"]["entrypoint"].replace("http://mlflow.", "http://tracking.")


@pytest.mark.parametrize("change,expected", [
    (postgres_on_empty_dir, "PostgreSQL's data is not on a persistent volume claim"),
    (no_auth, "no authentication"),
    (no_credentials, "no MLFLOW_TRACKING_PASSWORD / MLFLOW_TRACKING_USERNAME"),
    (wrong_service, "names Service 'tracking' in namespace 'prior-study'"),
], ids=["database without a volume claim", "server without auth", "trials without credentials",
        "tracking URI of an undefined Service"])
def test_kubernetes_tracking_problems_are_warned_about(tmp_path, change, expected, capsys):
    from study.ops.cluster import check

    errors, warnings = check(manifests(tmp_path, change))
    assert errors == [] and len(warnings) >= 1 and any(expected in w for w in warnings), warnings
    assert main(["check", *map(str, manifests(tmp_path, change))]) == 0
    assert expected in capsys.readouterr().err
