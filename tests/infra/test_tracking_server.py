"""Durable, authenticated tracking with real components: PostgreSQL on 127.0.0.1 (Debian's server, run by
the test), a real ``mlflow server`` on it, 32 processes logging at once, and a real sweep whose runs survive
restarts of both the server and the database."""
import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

from benchmarks.tracking_load import STAGES, missing_writes, run_load, trial_params
from study.ops.servers import MlflowServer, write_auth_config

from ..sweep.conftest import write_sweep
from ..sweep.test_sweep_run import steps

ADMIN = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "not-the-default-Pw-17"}


def test_32_processes_logging_at_once_lose_nothing(postgres, tmp_path):
    server = MlflowServer(postgres.uri, tmp_path / "artifacts", tmp_path / "server.log", workers=4).start()
    try:
        result = run_load(server.url, processes=32, backend_uri=postgres.uri)
        assert result.failed == 0, result.failures
        assert result.lost == 0 and result.requests == 32 * (2 + 1 + STAGES * 6 + 2 + 1)
        # the read-back does see a missing write: remove one and count again
        client = MlflowClient(server.url)
        run = client.search_runs([client.get_experiment_by_name(next(
            e.name for e in client.search_experiments() if e.name.startswith("load-"))).experiment_id],
            filter_string="tags.`load.worker` = '3'")[0]
        client.delete_tag(run.info.run_id, "study.stage1.key")
        assert missing_writes(MlflowClient(postgres.uri), client, run.info.run_id, 3, trial_params()) == 1
    finally:
        server.stop()


def test_sweep_on_authenticated_postgres_survives_server_and_database_restarts(postgres, tmp_path):
    auth = write_auth_config(tmp_path / "auth.ini", postgres.create_database("mlflow_auth"),
                             ADMIN["MLFLOW_TRACKING_PASSWORD"])
    start = lambda: MlflowServer(postgres.uri, tmp_path / "artifacts", tmp_path / "server.log",  # noqa: E731
                                 auth_config=auth).start()
    server = start()
    path = write_sweep(tmp_path, mlflow={"tracking_uri": server.url}, space={"schedule.sigma": {"grid": [0.0, 0.077]}})
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    anonymous = subprocess.run([sys.executable, "-m", "study.sweep", path], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
    assert anonymous.returncode == 2 and "401" in anonymous.stderr, anonymous.stderr[-2000:]
    assert "Traceback" not in anonymous.stderr
    sweep = subprocess.run([sys.executable, "-m", "study.sweep", path], cwd=tmp_path, env={**env, **ADMIN},
                           capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]

    server.stop()
    postgres.stop()
    postgres.start()  # the same data folder
    server = start()
    try:
        os.environ.update(ADMIN)
        client = MlflowClient(server.url)
        experiment = client.get_experiment_by_name("tiny-study")
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if r.data.tags.get("study.role") == "sweep"]
        children = [r for r in runs if r.data.tags.get("study.role") == "trial"]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
        tuned = next(c for c in children if c.data.params["schedule.sigma"] == "0.077")
        assert steps(client, tuned, "auroc") == [0, 1]
        assert {a.path for a in client.list_artifacts(tuned.info.run_id)} >= {"metrics.json", "stage0", "stage1"}
        assert "study_summary.csv" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    finally:
        for key in ADMIN:
            os.environ.pop(key, None)
        server.stop()
