"""search.warm_start: an earlier sweep's finished trials, read back from a real MLflow store into this sweep's
space and told to Optuna before it proposes anything; a name that is not there, or a space they cannot be
mapped onto, exits 2 before Ray starts."""
import optuna
from mlflow.tracking import MlflowClient
from ray import tune

from study.sweep.cli import load_sweep
from study.sweep.searcher import StudySearch, earlier_trials
from study.sweep.tracking import PARENT_TAG, ROLE_TAG

from .conftest import write_sweep
from .test_sweep_config import run_cli

OBJECTIVES = {"auroc": "max", "logp_drop@0.01": "max"}


def earlier_sweep(uri: str) -> None:
    """An earlier study's runs as a sweep leaves them: a parent, trials with their settings as params."""
    client = MlflowClient(uri)
    experiment = client.create_experiment("earlier")
    parent = client.create_run(experiment, run_name="earlier", tags={ROLE_TAG: "sweep"}).info.run_id
    trials = [("FINISHED", "0.05", {"auroc": 0.9, "logp_drop_at_0.01": -0.5}),
              ("FINISHED", "0.2", {"auroc": 0.7, "logp_drop_at_0.01": -0.1}),
              ("FINISHED", "0.9", {"auroc": 0.6, "logp_drop_at_0.01": -0.01}),  # σ outside the new space
              ("FINISHED", "0.1", {"auroc": 0.8}),  # an objective missing
              ("KILLED", "0.15", {"auroc": 0.95, "logp_drop_at_0.01": -0.2})]  # stopped early: not a result
    for status, sigma, metrics in trials:
        run = client.create_run(experiment, tags={ROLE_TAG: "trial", PARENT_TAG: parent}).info.run_id
        client.log_param(run, "schedule.sigma", sigma)
        client.log_param(run, "prior.name", "wavenet")
        for name, value in metrics.items():
            client.log_metric(run, name, value, step=1)
        client.set_terminated(run, status)


def warm_sweep(tmp_path, **search):
    return write_sweep(tmp_path, space={"schedule.sigma": {"uniform": [0.01, 0.5]}},
                       search={"kind": "optuna", "num_samples": 2, "objectives": OBJECTIVES, **search})


def test_finished_trials_are_read_back_into_the_space_and_told_to_optuna(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    earlier_sweep(uri)
    sweep = load_sweep(warm_sweep(tmp_path, warm_start="earlier"), [])
    seeds, skipped = earlier_trials(sweep, MlflowClient(uri), uri)
    assert sorted(seeds, key=lambda seed: seed[1]) == [({"schedule.sigma": 0.2}, [0.7, -0.1]), ({"schedule.sigma": 0.05}, [0.9, -0.5])]
    assert skipped == 2
    search = StudySearch(seeds, metric=list(OBJECTIVES), mode=["max", "max"],
                         sampler=optuna.samplers.TPESampler(seed=0))
    search.set_search_properties(None, None, {"schedule.sigma": tune.uniform(0.01, 0.5)})
    told = search._ot_study.trials
    assert [t.state for t in told] == [optuna.trial.TrialState.COMPLETE] * 2 and search.seeded == 2
    assert sorted(t.values for t in told) == [[0.7, -0.1], [0.9, -0.5]]
    assert search.suggest("next")["schedule.sigma"] is not None  # and Optuna goes on from there


def test_a_warm_start_that_cannot_be_used_exits_2_before_ray_starts(tmp_path, capsys):
    earlier_sweep(f"sqlite:///{tmp_path / 'mlflow.db'}")
    code, _, err = run_cli(tmp_path, capsys, warm_sweep(tmp_path, warm_start="no-such-study"))
    assert code == 2 and "search.warm_start: no experiment 'no-such-study'" in err
    unmapped = write_sweep(tmp_path, space={"training.lr": {"loguniform": [1e-4, 1e-2]}},
                           search={"kind": "optuna", "objectives": OBJECTIVES, "warm_start": "earlier"})
    code, _, err = run_cli(tmp_path, capsys, unmapped)
    assert code == 2 and "do not record 'training.lr'" in err
    # an objective the earlier trials never logged (a valid metric name, but not theirs)
    smoother = warm_sweep(tmp_path, warm_start="earlier", objectives={"auroc": "max", "auroc@0.01": "max"})
    code, _, err = run_cli(tmp_path, capsys, smoother)
    assert code == 2 and ("search.warm_start: no finished trial of 'earlier' logged the objective 'auroc@0.01'; "
                          "did you mean 'auroc'?") in err, err
    assert not (tmp_path / "ray").exists()  # no Ray state, no stage store: nothing was started
    code, _, err = run_cli(tmp_path, capsys, write_sweep(tmp_path, search={"warm_start": "earlier"}), "--dry-run")
    assert code == 2 and "search.warm_start seeds Optuna's sampler" in err
