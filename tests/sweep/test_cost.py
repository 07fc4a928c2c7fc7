"""What the frontier cost: hypervolume against compute, totals, and importance per objective."""
import numpy as np
import pandas as pd
import pytest

from study.sweep.report.cost import history, hypervolume, reference_point, totals
from study.sweep.report.importance import MIN_TRIALS, importances, top_lines


def test_hypervolume_of_two_objectives_matches_the_area_by_hand():
    # minimisation form; reference (0, 0): three points form a staircase
    points = np.array([[-3.0, -1.0], [-2.0, -2.0], [-1.0, -3.0], [-1.0, -1.0]])  # the last is dominated
    assert hypervolume(points, np.zeros(2)) == pytest.approx(3 * 1 + 2 * 1 + 1 * 1)
    assert hypervolume(points, np.array([-5.0, -5.0])) == 0.0  # a reference that nothing beats: zero


def rows():
    # two trials; b reuses a's clean stage (no training) then trains one more stage
    return pd.DataFrame([
        {"run": "a", "run_id": "a", "stage": 0, "logged_at": 1, "auroc": 0.6, "si_sdr": -9.0,
         "compute_train_steps": 100.0, "compute_wall_seconds": 10.0},
        {"run": "b", "run_id": "b", "stage": 0, "logged_at": 2, "auroc": 0.6, "si_sdr": -9.0,
         "compute_train_steps": 0.0, "compute_wall_seconds": 1.0},
        {"run": "a", "run_id": "a", "stage": 1, "logged_at": 3, "auroc": 0.7, "si_sdr": -6.0,
         "compute_train_steps": 150.0, "compute_wall_seconds": 16.0},
        {"run": "b", "run_id": "b", "stage": 1, "logged_at": 4, "auroc": 0.8, "si_sdr": -8.0,
         "compute_train_steps": 50.0, "compute_wall_seconds": 7.0},
    ])


def test_hypervolume_history_follows_compute_in_the_order_it_was_spent():
    objectives = {"auroc": "max", "si_sdr": "max"}
    curve = history(rows(), objectives, {"auroc": 0.5, "si_sdr": -10.0})
    assert curve["compute_train_steps"].tolist() == [100, 100, 150, 200]  # the reused stage cost nothing
    by_hand = [0.1 * 1, 0.1 * 1, 0.2 * 4, 0.2 * 4 + 0.1 * 2]
    assert curve["hypervolume"].tolist() == pytest.approx(by_hand)
    assert totals(rows()) == {"compute_train_steps_total": 200.0, "compute_wall_seconds_total": 23.0}
    # the default reference is the worst value reported
    assert reference_point(rows(), objectives, None).tolist() == [-0.6, 9.0]


def test_importance_finds_the_setting_that_moves_each_objective():
    rng = np.random.default_rng(0)
    n = MIN_TRIALS + 10
    lr = rng.uniform(1e-4, 1e-2, n)
    family = rng.choice(["wavenet", "flowavenet"], n)
    seed = rng.integers(0, 5, n).astype(float)
    trials = pd.DataFrame({"training.lr": lr.astype(str), "prior.name": family, "training.seed": seed.astype(str),
                           "auroc": np.where(family == "wavenet", 0.9, 0.6) + 0.001 * rng.standard_normal(n),
                           "si_sdr": 1000 * lr + 0.01 * rng.standard_normal(n)})
    table = importances(trials, ["training.lr", "prior.name", "training.seed"], ["auroc", "si_sdr"])
    best = table.sort_values("importance").groupby("objective").last()["setting"].to_dict()
    assert best == {"auroc": "prior.name", "si_sdr": "training.lr"}
    assert top_lines(table)[0].startswith("importance for auroc: prior.name")
    assert importances(trials.head(MIN_TRIALS - 1), ["training.lr"], ["auroc"]).empty  # too few: no answer


def test_importance_over_many_trials_is_computed_on_a_seeded_sample_and_still_finds_the_setting(monkeypatch):
    import study.sweep.report.importance as importance

    rng = np.random.default_rng(1)
    n = 60
    lr, sigma = rng.uniform(1e-4, 1e-2, n), rng.uniform(0, 1, n)
    trials = pd.DataFrame({"training.lr": lr.astype(str), "schedule.sigma": sigma.astype(str),
                           "auroc": 100 * lr + 0.01 * sigma})
    monkeypatch.setattr(importance, "MAX_TRIALS", 20)
    seen = []
    monkeypatch.setattr(importance.optuna.trial, "create_trial",
                        lambda create=importance.optuna.trial.create_trial, **kw: seen.append(kw) or create(**kw))
    first = importances(trials, ["training.lr", "schedule.sigma"], ["auroc"])
    assert len(seen) == 20  # the sample, not all 60
    assert first.equals(importances(trials, ["training.lr", "schedule.sigma"], ["auroc"]))  # the same sample
    assert first.sort_values("importance")["setting"].iloc[-1] == "training.lr"


def test_a_sweep_where_no_stage_was_reported_draws_and_counts_nothing(tmp_path):
    from study.sweep.report.frontier import with_pareto
    from study.sweep.report.page import write_page

    objectives = {"auroc": "max", "si_sdr": "max"}
    empty = with_pareto(pd.DataFrame(), objectives)
    assert not write_page(tmp_path / "frontier.html", empty, objectives, None)
    assert history(pd.DataFrame(), objectives).empty and totals(pd.DataFrame()) == {}
    assert importances(pd.DataFrame(), ["training.lr"], list(objectives)).empty
