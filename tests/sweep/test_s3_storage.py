"""A sweep whose storage is ``s3://…`` on a real S3 API: moto's server on 127.0.0.1 (no cloud). The Tune state
and the stage store both live in the bucket; the driver is killed with SIGKILL mid-trial and the re-run
finishes without training a finished stage again."""
import os
import signal
import subprocess
import sys
import time

import pytest

from study.store.stage_store import StageStore

from study.ops.servers import free_port
from .conftest import KILLABLE_BASE, write_sweep
from .test_resume import (assert_no_metric_logged_twice, assert_only_interrupted_stages_continued, run_driver,
                          stage_folders, wait_for_second_stage)
from .test_sweep_run import runs_of


@pytest.fixture
def s3_server(monkeypatch):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    import boto3

    deadline = time.time() + 30
    while True:
        try:
            boto3.client("s3").create_bucket(Bucket="study")
            break
        except Exception:  # noqa: BLE001 - the server is still starting
            if time.time() > deadline:
                raise
            time.sleep(0.3)
    yield "s3://study/prior-study"
    server.terminate()
    server.wait(timeout=10)


def test_sweep_on_s3_survives_sigkill_and_resumes(tmp_path, s3_server):
    path = write_sweep(tmp_path, base=KILLABLE_BASE, space={"schedule.sigma": {"grid": [0.0, 0.077]}},
                       max_concurrent=1, storage=s3_server)
    store = StageStore(f"{s3_server}/stages")
    first = run_driver(path, tmp_path, start_new_session=True)
    wait_for_second_stage(store, first)  # kill while the fine-tuned stage trains
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    before = stage_folders(store)
    finished_before = {k for k in before if store.is_complete(k)}
    assert len(finished_before) == 1

    again = run_driver(path, tmp_path)
    output, _ = again.communicate(timeout=400)
    assert again.returncode == 0, output[-3000:]
    after = stage_folders(store)
    assert len(after) == 2 and all(store.is_complete(k) for k in after)
    assert_only_interrupted_stages_continued(before, finished_before, after, output[-3000:])
    client, parents, children = runs_of(tmp_path)
    assert parents[0].info.status == "FINISHED" and len(children) == 2
    assert all(c.info.status == "FINISHED" for c in children)
    assert_no_metric_logged_twice(client, children)
