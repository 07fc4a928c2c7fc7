"""Successive halving by Pareto rank: the rule on hand-made points, its decisions kept across a restart, the
settings that could never stop a trial refused, and a real sweep on local Ray whose dominated trials stop at
the first rung and stay stopped when the driver is killed and the sweep resumed."""
import functools
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.tune.schedulers import TrialScheduler

from study.store.stage_store import StageStore
from study.sweep.config import milestones
from study.measure.pareto import crowding, fronts
from study.sweep.halving import ParetoHalving, keeps, rungs_file
from study.sweep.tracking import STOPPED_TAG, TRIAL_TAG, child_runs, mlflow_name

from .conftest import TINY_BASE, write_sweep
from .test_resume import assert_only_interrupted_stages_continued, stage_folders
from .test_sweep_config import run_cli


def test_fronts_crowding_and_the_best_share_by_hand():
    points = [(1, 5), (2, 4), (3, 3), (1.5, 3.5), (1, 1), (3, 3)]  # larger is better on both axes
    assert fronts(points) == [0, 0, 0, 1, 2, 0]  # (1.5, 3.5) is dominated by (2, 4); (1, 1) by everything
    distance = crowding([(1, 5), (2, 4), (3, 3)])
    assert distance[0] == distance[2] == float("inf") and distance[1] == pytest.approx(2.0)  # (1 + 1) / 2 × 2
    # ⌈6/2⌉ = 3 go on: front 0 by crowding; the inner point of front 0 is the 4th best of six
    assert [keeps(points, i, 2) for i in range(6)] == [True, False, True, False, False, True]
    assert keeps([(1.0, 1.0), (1.0, 1.0)], 1, 2)  # equal points rank equally: a tie goes on together
    assert milestones(1, 2, 2) == [1] and milestones(1, 2, 5) == [1, 2, 4] and milestones(2, 3, 2) == []


class Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def test_decisions_follow_arrival_and_survive_a_restart(tmp_path):
    objectives = {"auroc": "max", "logp_drop@0.01": "max"}
    scheduler = ParetoHalving(objectives, grace_period=1, reduction_factor=2, root=str(tmp_path), record="r.json")
    arrivals = [("a", 0.9, -5.0), ("b", 0.8, -6.0), ("c", 0.95, -7.0), ("d", 0.5, -9.0)]
    decisions = [scheduler.on_trial_result(None, Trial(t), {"stage": 0, "stages": 2, "auroc": x, "logp_drop@0.01": y})
                 for t, x, y in arrivals]
    # a: alone, goes on; b: dominated by a, 1 of 2 goes on; c: on a's front, boundary of 3, 2 of 3 go on;
    # d: dominated by all, 2 of 4 go on
    assert decisions == ["CONTINUE", "STOP", "CONTINUE", "STOP"]
    last_stage = {"stage": 1, "stages": 2, "auroc": 0.0, "logp_drop@0.01": -99.0}
    assert scheduler.on_trial_result(None, Trial("a"), last_stage) == TrialScheduler.CONTINUE  # never at the end
    # Tune restores the scheduler pickled when the sweep started: it reads the decisions made since
    restored = pickle.loads(pickle.dumps(ParetoHalving(objectives, 1, 2, str(tmp_path), "r.json")))
    assert restored.stopped() == {"b": 1, "d": 1}
    again = restored.on_trial_result(None, Trial("c"), {"stage": 0, "stages": 2, "auroc": 0.0, "logp_drop@0.01": -99})
    assert again == TrialScheduler.CONTINUE  # judged before: the same answer, whatever it reports now
    assert len(json.loads((tmp_path / "r.json").read_text())["rungs"]["1"]) == 4
    (tmp_path / "torn.json").write_text('{"rungs": {"1": [')  # never decided on: the file is named
    with pytest.raises(ValueError, match="torn.json: unreadable rung records"):
        ParetoHalving(objectives, 1, 2, str(tmp_path), "torn.json")


def test_optuna_is_told_a_stopped_trial_was_pruned(tmp_path):
    """Its early values must not enter Optuna's Pareto set (a multi-objective study cannot prune by itself)."""
    import optuna
    from ray import tune

    from study.sweep.halving import stopped_early
    from study.sweep.searcher import StudySearch

    (tmp_path / rungs_file("s")).write_text(json.dumps(
        {"rungs": {"1": [{"trial": "stopped", "values": {"a": 0.0}, "decision": "stop"}]}}))
    search = StudySearch(stopped=functools.partial(stopped_early, str(tmp_path), "s"), space={"x": tune.uniform(0, 1)},
                         metric=["a", "b"], mode=["max", "max"], sampler=optuna.samplers.RandomSampler(seed=0))
    for trial in ("stopped", "finished"):
        search.suggest(trial)
        search.on_trial_complete(trial, {"a": 1.0, "b": 2.0})
    states = [t.state for t in search._ot_study.trials]
    assert states == [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE]
    assert [t.number for t in search._ot_study.best_trials] == [1]


@pytest.mark.parametrize("scheduler, expected", [
    ({"kind": "pareto_halving", "reduction_factor": 1.5}, "scheduler.reduction_factor=1.5"),
    ({"kind": "pareto_halving", "grace_period": 2}, "scheduler.grace_period=2: the trials have at most 2 stages"),
    ({"kind": "asha"}, "use scheduler.kind=pareto_halving"),
])
def test_settings_that_could_never_stop_a_trial_are_refused(tmp_path, capsys, scheduler, expected):
    sweep = write_sweep(tmp_path, scheduler=scheduler,
                        search={"objectives": {"auroc": "max", "logp_drop@0.01": "max"}})
    code, _, err = run_cli(tmp_path, capsys, sweep, "--dry-run")
    assert code == 2 and expected in err and len(err.strip().splitlines()) <= 2, err


LEARNING_RATES = [3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4]  # fast learners first: the slower ones reach the rung dominated


def test_a_two_objective_sweep_stops_dominated_trials_and_keeps_its_decisions_after_sigkill(tmp_path):
    # two objectives a better learning rate improves together, so slower learners are dominated at the rung
    objectives = {"auroc": "max", "bits_per_sample/sin": "min"}
    base = {**TINY_BASE, "training": {**TINY_BASE["training"], "steps": 30},
            "schedule": {"kind": "from_clean", "sigma": 0.077, "finetune_steps": 30}, "separation": {"enabled": False}}
    sweep = write_sweep(tmp_path, base=base, space={"training.lr": {"grid": LEARNING_RATES}},
                        search={"objectives": objectives}, scheduler={"kind": "pareto_halving"}, max_concurrent=2)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}
    rungs = tmp_path / "ray" / rungs_file("tiny")
    driver = subprocess.Popen([sys.executable, "-m", "study.sweep", sweep], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:  # kill it once a trial was stopped
        if rungs.exists() and "stop" in {r["decision"] for r in json.loads(rungs.read_text())["rungs"].get("1", [])}:
            break
        time.sleep(0.5)
    assert driver.poll() is None and rungs.exists(), driver.communicate()[0][-3000:]
    before = json.loads(rungs.read_text())["rungs"]["1"]
    os.killpg(driver.pid, signal.SIGKILL)  # the driver, Ray and every trial with it, as an OOM killer would
    driver.wait(timeout=60)
    store = StageStore(tmp_path / "ray" / "stages")
    attempts_before = stage_folders(store)
    sealed_before = {key for key in attempts_before if store.is_complete(key)}

    resumed = subprocess.run([sys.executable, "-m", "study.sweep", sweep], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = json.loads(rungs.read_text())["rungs"]["1"]
    assert after[:len(before)] == before, resumed.stdout[-4000:]
    assert len(after) == len(LEARNING_RATES), resumed.stdout[-6000:]  # decisions kept, each trial judged once

    # every decision is the rule applied to what the trials reported, in the order they reached the rung
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-study")
    parent = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'tiny'")[0]
    runs = {run.data.tags[TRIAL_TAG]: run for run in child_runs(client, experiment.experiment_id, parent.info.run_id)}
    assert len(runs) == len(LEARNING_RATES)
    points = []
    for i, record in enumerate(after):
        run = runs[record["trial"]]
        reported = {name: [m for m in client.get_metric_history(run.info.run_id, mlflow_name(name))
                           if m.step == 0][-1].value for name in objectives}
        assert reported == pytest.approx(record["values"])
        points.append(tuple(reported[n] * (1 if objectives[n] == "max" else -1) for n in sorted(objectives)))
        assert record["decision"] == ("continue" if keeps(points, i, 2) else "stop")
    stopped = {r["trial"] for r in after if r["decision"] == "stop"}
    assert stopped, "nothing was stopped: the test's trials do not exercise the rule"
    for trial, run in runs.items():
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "stage")]
        if trial in stopped:  # stopped at the rung, not restarted, marked, and never trained its second stage
            assert run.info.status == "KILLED" and run.data.tags[STOPPED_TAG] == "1" and 1 not in steps
            assert "pareto_halving" in run.data.tags["study.killed"]
        else:
            assert run.info.status == "FINISHED" and sorted(set(steps)) == [0, 1] and STOPPED_TAG not in run.data.tags
    # no stage trained twice across the kill, counted from the store's attempt records (a trial killed after
    # sealing its stage but before reporting it says "reused" when resumed, so run tags cannot count this)
    attempts_after = stage_folders(store)
    assert all(store.is_complete(key) for key in attempts_after)
    assert_only_interrupted_stages_continued(attempts_before, sealed_before, attempts_after, resumed.stdout[-4000:])
    trained = sum(1 for run in runs.values() for key, tag in run.data.tags.items()
                  if key.startswith("study.stage") and key.endswith(".reused") and tag == "false")
    assert 0 < trained <= len(attempts_after)
    assert f"({len(stopped)} of them stopped early)" in resumed.stdout
    summary = (Path(client.download_artifacts(parent.info.run_id, "study_summary.csv", str(tmp_path)))
               .read_text().splitlines())
    assert "stopped_early" in summary[0]
