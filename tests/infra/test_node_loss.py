"""A cluster that loses a node, and a tracking server that goes down, in the middle of a sweep: a Ray cluster of
four nodes on 127.0.0.1 (tests/infra/node_loss_sweep.py) tracks to an ``mlflow server`` on PostgreSQL, its
trials on different nodes, their runs and artifacts through the server's HTTP API. A worker
node dies with SIGKILL while a trial is half way through a stage; once the trial has been started again on
another node, the MLflow server is killed and started again on the same database. Counts what was redone:
no sealed stage trained again, the interrupted stage continued once from its stored checkpoint, no metric
step logged twice, no run left RUNNING, every trial accounted for."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from study.ops.servers import MlflowServer
from study.store.stage_store import StageStore

from ..sweep.conftest import KILLABLE_BASE, write_sweep
from ..sweep.test_resume import assert_no_metric_logged_twice, stage_folders

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def wait_for(condition, seconds: float, what: str, process: subprocess.Popen) -> None:
    """Poll ``condition`` until it holds (``seconds``: only an upper bound, for a loaded machine)."""
    deadline = time.time() + seconds
    while not condition():
        assert process.poll() is None, f"the sweep ended before {what}"
        assert time.time() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


def test_a_node_lost_mid_stage_and_a_restarted_tracking_server_redo_nothing(postgres, tmp_path):
    server = MlflowServer(postgres.uri, tmp_path / "artifacts", tmp_path / "server.log", workers=1).start()
    path = write_sweep(tmp_path, base=KILLABLE_BASE, space={"schedule.sigma": {"grid": [0.077, 0.129]}},
                       mlflow={"tracking_uri": server.url})  # failure.max_failures: the cluster default
    store = StageStore(tmp_path / "ray" / "stages")
    # a lease left by the dead node frees in 15 s (its holder's heartbeat stopped), not the default 60
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
           "PRIOR_STUDY_LEASE_SECONDS": "15"}
    sweep = subprocess.Popen([sys.executable, str(HERE / "node_loss_sweep.py"), path, str(tmp_path / "ray" / "stages")],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=open(tmp_path / "sweep.err", "w"),
                             text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(sweep.stdout), daemon=True)
    reader.start()
    try:
        killed = lambda: next((json.loads(l[7:]) for l in lines if l.startswith("KILLED ")), None)  # noqa: E731,E741
        wait_for(killed, 600, "a node was killed mid-stage", sweep)
        stage = killed()["stage"]
        # the interrupted trial started again elsewhere: now the tracking server goes down under it
        wait_for(lambda: len(stage_folders(store).get(stage, [])) == 2, 600, "the trial's second attempt", sweep)
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        time.sleep(2)  # requests meet a closed port for a while, as when a server restarts
        server.start()
        sweep.wait(timeout=900)
    finally:
        if sweep.poll() is None:
            sweep.kill()
        reader.join(timeout=10)
    err = (tmp_path / "sweep.err").read_text()
    try:
        assert sweep.returncode == 0, err[-4000:]
        result = json.loads(next(line[7:] for line in lines if line.startswith("RESULT ")))
        assert (result["finished"], result["failed"]) == (2, 0), err[-4000:]
        assert result["nodes_left"] == 3  # the head and two workers

        kill = result["killed"][0]
        trained = stage_folders(store)
        assert all(store.is_complete(key) for key in trained) and len(trained) == 3  # clean + 2 fine-tunings
        for key in kill["sealed_before"]:  # nothing sealed was trained again
            assert len(trained[key]) == kill["attempts_before"][key] == 1
        attempts = [store.read_json(f"{kill['stage']}/attempts/{a}") for a in trained[kill["stage"]]]
        assert len(attempts) == 2 and attempts[1]["start_step"] > 0  # continued once, from its checkpoint
        others = set(trained) - {kill["stage"], *kill["sealed_before"]}
        assert all(len(trained[key]) == 1 for key in others)

        client = MlflowClient(server.url)
        runs = client.search_runs([result["experiment_id"]])
        assert not [run.info.run_name for run in runs if run.info.status == "RUNNING"]
        children = [run for run in runs if run.data.tags.get("study.role") == "trial"]
        assert len(children) == 2 and all(run.info.status == "FINISHED" for run in children)
        assert next(run for run in runs if run.data.tags.get("study.role") == "sweep").info.status == "FINISHED"
        assert_no_metric_logged_twice(client, children)
        assert all(run.data.tags["study.node_id"] != kill["node"] for run in children)  # ended on live nodes
        for child in children:  # every stage's files went through the server to its artifact store
            assert child.info.artifact_uri.startswith("mlflow-artifacts:")
            assert {"metrics.json", "stage0", "stage1"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
        assert len(list((tmp_path / "artifacts").rglob("cross_likelihood.png"))) >= 3  # 1 + 2 stages
    finally:
        server.stop()
