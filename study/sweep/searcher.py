"""Optuna as a study's searcher: Ray's OptunaSearch with what a study adds to it.

- ``search.warm_start``: the finished trials of an earlier sweep (their settings and objectives) are told to
  Optuna as completed trials before it proposes anything (Ray's own ``evaluated_rewards`` takes one value
  per trial, so it cannot seed a multi-objective study).
- ``scheduler.kind: pareto_halving``: a trial stopped at a rung is told to Optuna as *pruned*, so its early
  values never enter Optuna's Pareto set or its model as a finished trial's would.
"""
from __future__ import annotations

import math
from typing import Callable

import optuna
from ray.tune.search.optuna import OptunaSearch

from study.config.reading import ConfigError, did_you_mean
from study.sweep.config import Dimension, SweepConfig


class StudySearch(OptunaSearch):
    def __init__(self, seeds: list[tuple[dict, list[float]]] = (), stopped: Callable[[], dict] | None = None,
                 **kwargs):
        self.seeds, self.stopped = list(seeds), stopped  # stopped(): {trial id: rung}; picklable (a partial)
        self.seeded = 0
        super().__init__(**kwargs)  # sets the study up at once when given a space

    def _setup_study(self, mode):
        super()._setup_study(mode)
        for params, values in self.seeds:  # inside this space (see earlier_trials), with every objective
            self._ot_study.add_trial(optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE, values=values, params=params, distributions=self._space))
            self.seeded += 1

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if self.stopped is not None and trial_id in self.stopped():
            result = None  # OptunaSearch tells Optuna PRUNED for a trial with neither a result nor an error
        super().on_trial_complete(trial_id, result, error)


def read_back(text: str | None, dim: Dimension):
    """A setting as an earlier trial's MLflow param recorded it, as a value of ``dim``; None when it is not one
    (outside the range, or not among the choices)."""
    if text is None:
        return None
    try:
        if dim.kind in ("uniform", "loguniform"):
            value = float(text)
            return value if dim.values[0] <= value <= dim.values[1] else None
        if dim.kind == "randint":
            value = int(float(text))
            return value if dim.values[0] <= value < dim.values[1] else None
    except ValueError:
        return None
    return next((v for v in dim.values if str(v) == text), None)


def earlier_trials(sweep: SweepConfig, client, uri: str) -> tuple[list[tuple[dict, list[float]]], int]:
    """(settings, objective values) of every finished trial of the experiment ``search.warm_start`` names,
    read back into this sweep's space, and how many finished trials did not fit it (a setting outside the
    space, an objective missing). Raises ConfigError, before Ray starts, when the experiment does not exist
    or a setting of this space cannot be read from its runs at all."""
    from study.sweep.tracking import ROLE_TAG, mlflow_name, redacted, study_name

    name = sweep.search.warm_start
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise ConfigError(f"search.warm_start: no experiment {name!r} at {redacted(uri)}")
    runs = client.search_runs([experiment.experiment_id], max_results=10_000,
                              filter_string=f"tags.`{ROLE_TAG}` = 'trial' and attributes.status = 'FINISHED'")
    if not runs:
        raise ConfigError(f"search.warm_start: experiment {name!r} has no finished trial to start from")
    for key in sweep.space:
        if key == "variant" or not any(key in run.data.params for run in runs):
            raise ConfigError(f"search.warm_start: the trials of {name!r} do not record {key!r} (space.{key}), so "
                              "their settings cannot be mapped onto this sweep's space")
    logged = {study_name(key) for run in runs for key in run.data.metrics}
    for objective in sweep.search.objectives:
        if objective not in logged:
            raise ConfigError(f"search.warm_start: no finished trial of {name!r} logged the objective {objective!r}"
                              f"{did_you_mean(objective, logged)}, so none can be told to Optuna")
    seeds = []
    for run in runs:
        params = {key: read_back(run.data.params.get(key), dim) for key, dim in sweep.space.items()}
        values = [run.data.metrics.get(mlflow_name(objective)) for objective in sweep.search.objectives]
        if all(v is not None for v in params.values()) and all(v is not None and math.isfinite(v) for v in values):
            seeds.append((params, values))
    return seeds, len(runs) - len(seeds)
