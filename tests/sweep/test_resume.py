"""Durability of real subprocess sweeps: the driver killed with SIGKILL, SIGINT or SIGTERM mid-trial, then the
same command run again. Counts what was redone, not only what exists: every distinct stage is trained
exactly once, no finished stage is trained again, no (metric, step) is logged twice, no run is left RUNNING.
Also: two concurrent trials that need the same clean stage train it once."""
import os
import signal
import subprocess
import sys
import time

import pytest

from study.store.stage_store import StageStore
from study.sweep.cli import load_sweep
from study.sweep.driver import run_sweep

from .conftest import KILLABLE_BASE, write_sweep
from .test_sweep_run import runs_of

SIGMAS = [0.0, 0.077, 0.129]  # from_clean: 5 stages planned, 3 distinct (the clean stage is shared)


def stage_folders(store: StageStore) -> dict[str, list[str]]:
    """Trained stages (those with attempts) -> their attempt records."""
    keys = {name.split("/")[0] for name in store.list("") if "/attempts/" in name and name.count("/") == 2}
    return {key: store.list(f"{key}/attempts") for key in keys}


def assert_only_interrupted_stages_continued(before: dict, sealed_before: set, after: dict, context: str = "") -> None:
    """After a resume (``before``/``after``: :func:`stage_folders`): no stage sealed before it was trained
    again, and each interrupted one was continued by at most one new attempt, not restarted twice."""
    for key in sealed_before:
        assert after[key] == before[key], context
    for key in set(after) - sealed_before:
        assert len(set(after[key]) - set(before.get(key, []))) <= 1, (key, context)


def assert_no_metric_logged_twice(client, runs):
    for run in runs:
        for metric in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
            assert len(steps) == len(set(steps)), (run.info.run_name, metric, steps)


def wait_for_second_stage(store: StageStore, driver: subprocess.Popen) -> None:
    """Return once one stage is complete and a second one is training (the moment to stop the driver)."""
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None:
        time.sleep(0.2)
        trained = stage_folders(store)
        if len(trained) >= 2 and sum(store.is_complete(k) for k in trained) == 1:
            break
    assert driver.poll() is None, driver.communicate()[0][-3000:]


def wait_for_live_frontier(folder, driver: subprocess.Popen) -> bool:
    """Whether the sweep run carries the table and the page while the driver still runs (generous bound)."""
    deadline = time.time() + 180
    while time.time() < deadline and driver.poll() is None:
        client, parents, _ = runs_of(folder)
        # the page and the table from the first stage on (frontier.png waits for a stage with both objectives)
        if parents and {"study_summary.csv", "frontier.html"} <= {
                a.path for a in client.list_artifacts(parents[0].info.run_id)}:
            return driver.poll() is None
        time.sleep(1)
    return False


def run_driver(path, cwd, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "study.sweep", path], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_driver_stopped_mid_trial_resumes_without_redoing_anything(tmp_path, stop):
    path = write_sweep(tmp_path, base=KILLABLE_BASE, space={"schedule.sigma": {"grid": SIGMAS}}, max_concurrent=1)
    store = StageStore(tmp_path / "ray" / "stages")
    # SIGKILL takes the whole process group (driver and the local Ray it started), as a crashed node would
    first = run_driver(path, tmp_path, start_new_session=stop == signal.SIGKILL)
    wait_for_second_stage(store, first)
    if stop == signal.SIGINT:  # the live frontier: drawn on the sweep run from the first stage on, mid-sweep
        assert wait_for_live_frontier(tmp_path, first), "no frontier.html on the sweep run while it ran"
    if stop == signal.SIGKILL:
        os.killpg(first.pid, signal.SIGKILL)
    else:
        first.send_signal(stop)
    output, _ = first.communicate(timeout=120)
    if stop != signal.SIGKILL:
        assert first.returncode == 128 + stop, output[-3000:]
        assert "Resume with: python -m study.sweep" in output
        _, parents, children = runs_of(tmp_path)
        assert parents[0].info.status == "KILLED" and "Pareto set" not in output
        assert all(r.info.status != "RUNNING" for r in [*parents, *children]), output[-3000:]
    before = stage_folders(store)
    finished_before = {k for k in before if store.is_complete(k)}
    assert finished_before, output[-3000:]

    again = run_driver(path, tmp_path)
    output, _ = again.communicate(timeout=400)
    assert again.returncode == 0, output[-3000:]
    after = stage_folders(store)
    assert len(after) == 3 and all(store.is_complete(k) for k in after)  # distinct stages, each trained
    assert_only_interrupted_stages_continued(before, finished_before, after, output[-3000:])
    assert "reused" in output

    client, parents, children = runs_of(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children), output[-3000:]
    assert all("study.error" not in c.data.tags and "study.killed" not in c.data.tags for c in children)
    assert_no_metric_logged_twice(client, children)
    for child in children:
        expected = [0] if child.data.params["schedule.sigma"] == "0.0" else [0, 1]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "auroc")] == expected


def test_two_sweeps_started_at_once_on_one_storage_train_a_shared_stage_once(tmp_path):
    """Two drivers (each its own local Ray) on one storage: their trials share the clean stage through the
    lease files beside the store, so it is trained once and the other sweep waits and reuses it."""
    drivers = []
    for name, sigma in (("first", 0.077), ("second", 0.129)):
        folder = tmp_path / name
        folder.mkdir()
        # the shared clean stage is what counts: a short fine-tuning after it
        base = {**KILLABLE_BASE, "schedule": {**KILLABLE_BASE["schedule"], "finetune_steps": 40}}
        path = write_sweep(folder, name=name, experiment=name, base=base, storage=str(tmp_path / "ray"),
                           space={"schedule.sigma": {"grid": [sigma]}}, max_concurrent=1)
        drivers.append(run_driver(path, folder))
    outputs = [driver.communicate(timeout=600)[0] for driver in drivers]
    assert [driver.returncode for driver in drivers] == [0, 0], [out[-2000:] for out in outputs]
    trained = stage_folders(StageStore(tmp_path / "ray" / "stages"))
    assert len(trained) == 3 and all(len(attempts) == 1 for attempts in trained.values()), trained
    reused = []
    for name in ("first", "second"):
        client, _, children = runs_of(tmp_path / name, experiment=name)
        reused += [client.get_run(c.info.run_id).data.tags["study.stage0.reused"] for c in children]
    assert sorted(reused) == ["false", "true"]  # one sweep trained the clean stage, the other reused it


def test_concurrent_trials_train_a_shared_stage_once(tmp_path, ray_session):
    path = write_sweep(tmp_path, space={"schedule.sigma": {"grid": [0.077, 0.129]}}, max_concurrent=2)
    sweep = load_sweep(path, [])
    summary = run_sweep(sweep, path, log=lambda line: None)
    assert (summary.finished, summary.failed) == (2, 0)
    store = StageStore(tmp_path / "ray" / "stages")
    trained = stage_folders(store)
    assert len(trained) == 3 and all(len(attempts) == 1 for attempts in trained.values())  # clean stage once
    client, _, children = runs_of(tmp_path)
    reused = [client.get_run(c.info.run_id).data.tags["study.stage0.reused"] for c in children]
    assert sorted(reused) == ["false", "true"]
    keys = {client.get_run(c.info.run_id).data.tags["study.stage0.key"] for c in children}
    assert len(keys) == 1

    # running the finished sweep again does nothing, says so, and leaves MLflow exactly as it was
    def record():
        _, parents, runs = runs_of(tmp_path)
        return [(run.info.run_id, run.info.status, run.info.end_time, sorted(run.data.metrics.items()),
                 sorted(a.path for a in client.list_artifacts(run.info.run_id)),
                 {name: len(client.get_metric_history(run.info.run_id, name)) for name in run.data.metrics})
                for run in [*parents, *runs]]

    before, lines = record(), []
    again = run_sweep(load_sweep(path, []), path, log=lines.append)
    assert any("has finished already: nothing to do" in line for line in lines), lines
    assert (again.finished, again.failed, again.stages, again.reused) == (2, 0, summary.stages, summary.reused)
    assert record() == before
    assert {folder: len(attempts) for folder, attempts in stage_folders(store).items()} == \
        {folder: len(attempts) for folder, attempts in trained.items()}  # nothing trained


@pytest.mark.parametrize("retries", [1, 0])
def test_killed_worker_is_retried_and_continues_its_stage(tmp_path, ray_session, retries):
    """SIGKILL the Ray worker of a trial mid-stage: Tune retries it (failure.max_failures), and the retry
    reuses the finished clean stage and continues the fine-tuning from its last stored checkpoint. Without
    retries the trial's run ends KILLED with the reason recorded."""
    import threading

    path = write_sweep(tmp_path, base=KILLABLE_BASE, space={"schedule.sigma": {"grid": [0.077]}},
                       failure={"max_failures": retries})
    store = StageStore(tmp_path / "ray" / "stages")
    killed = []

    def kill_worker_mid_stage():
        deadline = time.time() + 600  # only an upper bound: a loaded machine may take minutes to start the worker
        while time.time() < deadline:
            time.sleep(0.1)
            for key, attempts in stage_folders(store).items():
                if not store.is_complete(key) and store.exists(f"{key}/train.pt"):
                    record = store.read_json(f"{key}/attempts/{attempts[0]}")
                    os.kill(record["pid"], signal.SIGKILL)
                    killed.append(key)
                    return

    killer = threading.Thread(target=kill_worker_mid_stage)
    killer.start()
    summary = run_sweep(load_sweep(path, []), path, log=lambda line: None)
    killer.join()
    if not retries:
        assert killed and (summary.finished, summary.failed) == (0, 1)
        _, parents, children = runs_of(tmp_path)
        # its only trial failed, so the sweep did (the trial's run says why it ended: KILLED, its worker lost)
        assert [c.info.status for c in children] == ["KILLED"] and parents[0].info.status == "FAILED"
        reason = children[0].data.tags["study.killed"]
        assert "died" in reason and ("ActorDied" in reason or "ActorError" in reason), reason[-2000:]
        return
    assert killed and (summary.finished, summary.failed) == (1, 0)
    trained = stage_folders(store)
    assert len(trained) == 2 and all(store.is_complete(k) for k in trained)
    clean = next(k for k in trained if k not in killed)
    assert len(trained[clean]) == 1  # not trained again by the retry
    retry = [store.read_json(f"{killed[0]}/attempts/{a}") for a in trained[killed[0]]]
    assert len(retry) == 2 and retry[1]["start_step"] > 0  # continued from the stored checkpoint
    client, _, children = runs_of(tmp_path)
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    assert_no_metric_logged_twice(client, children)


def test_second_ctrl_c_stops_at_once_and_leaves_nothing_running(tmp_path):
    """Two SIGINTs a moment apart: the sweep does not wait for the graceful stop, yet still exits 130 with
    every run closed and the exact resume command (with the flags given) printed."""
    path = write_sweep(tmp_path, base=KILLABLE_BASE, space={"schedule.sigma": {"grid": SIGMAS}}, max_concurrent=1)
    store = StageStore(tmp_path / "ray" / "stages")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "study.sweep", path, "--set", "search.seed=3"], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_second_stage(store, driver)
    driver.send_signal(signal.SIGINT)
    time.sleep(0.5)
    stopped = time.time()
    driver.send_signal(signal.SIGINT)
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, output[-3000:]
    assert time.time() - stopped < 60, output[-3000:]
    assert f"Resume with: python -m study.sweep {path} --set search.seed=3 --resume" in output, output[-3000:]
    client, parents, children = runs_of(tmp_path)
    assert parents[0].info.status == "KILLED"
    assert all(r.info.status != "RUNNING" for r in [*parents, *children]), output[-3000:]
    assert all("study.killed" in c.data.tags for c in children if c.info.status == "KILLED")
    assert_no_metric_logged_twice(client, children)
