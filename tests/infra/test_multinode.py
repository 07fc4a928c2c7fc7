"""A real multi-node Ray cluster on 127.0.0.1 with an MLflow tracking server: trials land on different nodes
and every run, metric and artifact reaches the server over HTTP."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.ops.servers import MlflowServer
from study.sweep.tracking import PARENT_TAG

from ..sweep.conftest import write_sweep

HERE = Path(__file__).resolve().parent


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts",
                          tmp_path / "server.log", workers=1).start()
    yield server.url
    server.stop()


def test_sweep_spreads_over_nodes_and_tracks_to_a_server(tmp_path, mlflow_server):
    path = write_sweep(tmp_path, space={"schedule.sigma": {"grid": [0.0, 0.077]}},
                       resources={"cpu": 1, "gpu": 0.6}, max_concurrent=2,
                       mlflow={"tracking_uri": mlflow_server})
    run = subprocess.run([sys.executable, str(HERE / "multinode_sweep.py"), path], cwd=tmp_path,
                         capture_output=True, text=True, timeout=400,
                         env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert run.returncode == 0, run.stderr[-4000:]
    summary = json.loads(next(line[7:] for line in run.stdout.splitlines() if line.startswith("RESULT ")))
    assert summary == {"finished": 2, "failed": 0, "nodes": 3, "experiment_id": summary["experiment_id"]}

    client = MlflowClient(mlflow_server)
    runs = client.search_runs([summary["experiment_id"]])
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["study.node_id"] for c in children}) == 2  # one trial per GPU node
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "auroc")] in ([0], [0, 1])
        files = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"metrics.json", "stage0"} <= files
        assert child.info.artifact_uri.startswith("mlflow-artifacts:")  # uploaded through the server
    stored = list((tmp_path / "server-artifacts").rglob("cross_likelihood.png"))
    assert len(stored) >= 3  # 1 + 2 stages, on the server's side
    parent = next(r for r in runs if r.data.tags.get("study.role") == "sweep")
    assert parent.info.status == "FINISHED"
