"""The sweep YAML: a base trial configuration, a search space over its dotted keys, and how to search it.

Validated before anything starts, in bounded time: every value of every dimension (both ends of a random
range) is applied to the base and validated as a :class:`study.config.schema.TrialConfig`, then combinations of
them (all of them for a small space, a fixed-size sample of a large one, never the whole product); the
objectives must be metrics those trials report. A mistake in any trial is reported with its field path
before Ray, MLflow or a folder exist.
"""
from __future__ import annotations

import itertools
import math
import random
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from study.config.schema import NAME_PATTERN, Section, TrialConfig
from study.config.reading import ConfigError, deep_merge, describe_validation_error, excerpt, set_path

MAX_TRIALS = 10_000  # a grid this large is a mistake (and its listing alone would be slow)
MAX_CHECKED_COMBINATIONS = 64  # combinations validated beyond each single value; all of them when fewer
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "file", "databricks")
Pair = Annotated[list[float], Field(min_length=2, max_length=2)]
IntPair = Annotated[list[int], Field(min_length=2, max_length=2)]

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")


class Dimension(Section):
    """Exactly one of: ``grid: [values]``, ``choice: [values]``, ``uniform: [lo, hi]``, ``loguniform: [lo, hi]``,
    ``randint: [lo, hi)``. Grid and choice values may be mappings, merged into the section the key names."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: Pair | None = None
    loguniform: Pair | None = None
    randint: IntPair | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [name for name in DISTRIBUTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DISTRIBUTIONS)}; got {given or 'none'}")
        kind = given[0]
        values = getattr(self, kind)
        if kind in ("grid", "choice") and not values:
            raise ValueError(f"{kind} needs at least one value")
        if kind in ("uniform", "loguniform", "randint") and not values[0] < values[1]:
            raise ValueError(f"{kind} needs [low, high] with low < high, got {list(values)}")
        if kind == "loguniform" and values[0] <= 0:
            raise ValueError(f"loguniform needs a positive low end, got {values[0]}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in DISTRIBUTIONS if getattr(self, name) is not None)

    @property
    def values(self):
        return getattr(self, self.kind)

    def representatives(self) -> list:
        """Values used to validate the space before the sweep starts."""
        if self.kind in ("grid", "choice"):
            return list(self.values)
        low, high = self.values
        return [low, high - 1] if self.kind == "randint" else [low, high]


class SearchConfig(Section):
    kind: Literal["grid", "random", "optuna"] = "grid"
    sampler: Literal["tpe", "nsga2", "gp"] = "tpe"
    objectives: dict[str, Literal["max", "min"]] = Field(default_factory=lambda: {"auroc": "max", "si_sdr": "max"})
    num_samples: int = Field(1, ge=1)  # grid: repeats of the grid; random/optuna: number of trials
    seed: int = 0
    # the hypervolume's reference point per objective (study.sweep.report.cost); default: the worst value seen
    reference_point: dict[str, float] | None = None
    # an earlier sweep's MLflow experiment: its finished trials are told to Optuna before it proposes any
    warm_start: str | None = Field(None, min_length=1, max_length=100)

    @field_validator("objectives")
    @classmethod
    def _some_objective(cls, value):
        if not value:
            raise ValueError("name at least one objective, e.g. {auroc: max}")
        return value

    @model_validator(mode="after")
    def _reference_for_objectives(self):
        unknown = sorted(set(self.reference_point or {}) - set(self.objectives))
        if unknown:
            raise ValueError(f"reference_point.{unknown[0]} is not one of the objectives {sorted(self.objectives)}")
        return self


class SchedulerConfig(Section):
    """``fifo`` runs every trial to its end; ``asha`` (one objective) and ``pareto_halving`` (any number:
    :mod:`study.sweep.halving`) stop trials early at stage boundaries."""

    kind: Literal["fifo", "asha", "pareto_halving"] = "fifo"
    metric: str | None = None  # ASHA: defaults to the single objective
    mode: Literal["max", "min"] | None = None
    grace_period: int = Field(1, ge=1)  # in reported stages: the first rung
    reduction_factor: float = Field(2.0, gt=1)  # η: the best 1/η of a rung go on
    max_t: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _can_stop(self):
        if self.kind == "pareto_halving" and self.reduction_factor < 2:
            raise ValueError(f"scheduler.reduction_factor={self.reduction_factor:g}: pareto_halving keeps the best "
                             "1/η of each rung, and below 2 it would keep nearly every trial; use 2 or more")
        return self


def milestones(grace: int, reduction: float, stages: int) -> list[int]:
    """Reported-stage counts at which a trial of ``stages`` stages is judged: ``grace``, then ×η each rung
    (at least one more stage), never at its last stage (nothing is left to save there)."""
    found, count = [], grace
    while count < stages:
        found.append(count)
        count = max(count + 1, math.ceil(count * reduction))
    return found


class Resources(Section):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class MlflowConfig(Section):
    tracking_uri: str = "sqlite:///mlflow.db"

    @field_validator("tracking_uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
        if scheme not in TRACKING_SCHEMES:
            raise ValueError(f"not a tracking URI MLflow can open (scheme {scheme or 'missing'!r}); use "
                             "sqlite:///path/to/mlflow.db, http://host:port or postgresql://user@host/db")
        if scheme == "sqlite" and not uri.startswith("sqlite:///"):
            raise ValueError("a sqlite URI names a file: sqlite:///relative.db or sqlite:////absolute/path.db")
        return uri


class FailureSettings(Section):
    # times a failing trial is started again (-1: without end); None: 0 on a local Ray, where a failure is a
    # bug to see, 2 on a cluster (ray.address), where a lost node is weather
    max_failures: int | None = Field(None, ge=-1)


class RaySettings(Section):
    address: str | None = None  # None: start Ray locally; "auto" or "ray://host:10001" for a cluster


CLUSTER_RETRIES = 2  # failure.max_failures unset on a cluster


class SweepConfig(Section):
    name: str = Field(pattern=NAME_PATTERN, max_length=100)  # names folders: no "/", no leading "."
    experiment: str | None = Field(None, pattern=NAME_PATTERN, max_length=100)  # MLflow; default: the name
    base: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Dimension] = Field(default_factory=dict)
    search: SearchConfig = Field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: int | None = Field(None, ge=1)
    storage: str = Field("runs/ray", min_length=1)  # "" would put Tune state and the store in the working folder
    # Trials reuse each other's identical stages through the stage store <storage>/stages; false gives
    # every trial a private store (still resumable), e.g. to measure what sharing saves.
    share_stages: bool = True
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    failure: FailureSettings = Field(default_factory=FailureSettings)
    ray: RaySettings = Field(default_factory=RaySettings)

    @model_validator(mode="after")
    def _combinations_that_work(self):
        if self.scheduler.kind == "asha" and len(self.search.objectives) > 1:
            raise ValueError("scheduler.kind=asha cannot be combined with several search.objectives: it ranks "
                             "one metric; use scheduler.kind=pareto_halving (early stopping by Pareto rank) or fifo")
        if self.search.warm_start and self.search.kind != "optuna":
            raise ValueError("search.warm_start seeds Optuna's sampler; grid and random searches do not learn "
                             "from earlier trials (their stages are reused through the stage store anyway)")
        grids = [key for key, dim in self.space.items() if dim.kind == "grid"]
        if self.search.kind == "optuna" and grids:
            raise ValueError(f"search.kind=optuna cannot search grid dimensions {grids}; use choice instead")
        return self

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name

    @property
    def retries(self) -> int:
        """How often a failing trial starts again: as set, else 0 locally and a few times on a cluster."""
        if self.failure.max_failures is not None:
            return self.failure.max_failures
        return CLUSTER_RETRIES if self.ray.address else 0

    @model_validator(mode="after")
    def _bounded(self):
        if self.num_trials() > MAX_TRIALS:
            raise ValueError(f"the space gives {self.num_trials():,} trials; at most {MAX_TRIALS:,} (use "
                             "search.kind: random or optuna with num_samples to sample a large space)")
        return self

    def num_trials(self) -> int:
        if self.search.kind == "optuna":
            return self.search.num_samples
        grid = math.prod(len(dim.values) for dim in self.space.values() if dim.kind == "grid")
        return grid * self.search.num_samples

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the grid dimensions (random dimensions left out)."""
        keys = [k for k, dim in self.space.items() if dim.kind == "grid"]
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.space[k].values for k in keys))]


VARIANT = "variant"  # a space key whose values are partial trial configs merged into the whole base


def apply_dimension(tree: dict, dotted: str, value) -> None:
    """Set one space key on a trial tree (:func:`study.config.reading.set_path` semantics); the value of the
    ``variant`` key is merged into the whole tree instead (to change linked settings together)."""
    if dotted != VARIANT:
        set_path(tree, dotted, value, where=f"space.{dotted}")
    elif not isinstance(value, dict):
        raise ConfigError(f"space.{VARIANT}: values must be mappings of trial settings, got {excerpt(value)}")
    else:
        tree.update(deep_merge(tree, value))


def trial_tree(base: dict, assignment: dict[str, Any]) -> dict:
    tree = deep_merge(base, {})
    for key, value in assignment.items():
        apply_dimension(tree, key, value)
    return tree


def checked_assignments(sweep: SweepConfig) -> list[dict[str, Any]]:
    """The assignments validation tries: every combination when there are at most
    :data:`MAX_CHECKED_COMBINATIONS`; otherwise every single value (the others at their first value) plus a
    seeded sample of combinations. Never the whole product, which can be astronomically large."""
    keys = list(sweep.space)
    values = [sweep.space[k].representatives() for k in keys]
    if math.prod(len(v) for v in values) <= MAX_CHECKED_COMBINATIONS:
        return [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    first = {k: v[0] for k, v in zip(keys, values)}
    singles = [first] + [{**first, key: value} for key, options in zip(keys, values) for value in options[1:]]
    rng = random.Random(0)
    sampled = [{k: rng.choice(v) for k, v in zip(keys, values)} for _ in range(MAX_CHECKED_COMBINATIONS)]
    return singles + sampled


def validate_space(sweep: SweepConfig, objectives: bool = True) -> list[TrialConfig]:
    """Validate the trials the sweep can produce (see :func:`checked_assignments`) against the trial schema,
    and its objectives against the metrics they report; raise ConfigError naming the field paths, and the
    combinations where they fail. Returns the validated trial configs."""
    assignments = checked_assignments(sweep)
    failures: dict[str, list[str]] = {}
    configs = []
    for assignment in assignments:
        try:
            configs.append(TrialConfig.model_validate(trial_tree(sweep.base, assignment)))
        except ValidationError as error:
            shown = ", ".join(f"{k}={excerpt(v, 40)}" for k, v in assignment.items())
            failures.setdefault(describe_validation_error(error, "base.", TrialConfig), []).append(shown)
    if failures:
        lines = []
        for message, where in list(failures.items())[:10]:
            if len(where) < len(assignments):
                more = f"; and {len(where) - 3} more" if len(where) > 3 else ""
                message += f"\n  (in trials with {'; '.join(where[:3])}{more})"
            lines.append(message)
        raise ConfigError("invalid trial configuration\n" + "\n".join(lines))
    if objectives:
        check_objectives(sweep, configs)
        check_rungs(sweep, configs)
    return configs


def check_rungs(sweep: SweepConfig, configs: list[TrialConfig]) -> None:
    """An early-stopping scheduler whose first rung comes at or after every trial's last stage never stops one."""
    from study.trial.stages import plan_stages

    s = sweep.scheduler
    if s.kind != "pareto_halving":
        return
    stages = max(len(plan_stages(cfg)) for cfg in configs)
    if stages == 1:
        raise ConfigError("scheduler.kind=pareto_halving: every trial has a single stage, so there is no stage "
                          "boundary to stop one at; use scheduler.kind fifo, or a schedule with several stages")
    if not milestones(s.grace_period, s.reduction_factor, stages):
        raise ConfigError(f"scheduler.grace_period={s.grace_period}: the trials have at most {stages} stages, so "
                          f"no rung comes before a trial's last stage and nothing would be stopped; use a "
                          f"grace_period below {stages}")


def metric_settings(cfg: TrialConfig) -> tuple:
    """What decides which metrics a trial reports (the arguments of :mod:`study.measure.names`' checks)."""
    from study.data.layouts import source_names

    return (source_names(cfg.data), cfg.evaluation.noise_levels, cfg.evaluation.background, cfg.noise_conditional,
            cfg.separation.enabled, cfg.separation.oracle_start,
            cfg.separation.enabled and cfg.separation.separator.steps > 0)


def sweep_metrics(configs: list[TrialConfig]) -> list[str]:
    """Every metric at least one of the trials reports, in the order of :func:`reported_metrics`."""
    from study.measure.names import reported_metrics

    return list(dict.fromkeys(name for cfg in configs for name in reported_metrics(*metric_settings(cfg))))


def check_objectives(sweep: SweepConfig, configs: list[TrialConfig]) -> None:
    """Every objective (and the ASHA metric) must be a metric that at least one trial reports."""
    from study.measure.names import metric_problem

    named = {f"search.objectives.{name}": name for name in sweep.search.objectives}
    if sweep.scheduler.metric:
        named["scheduler.metric"] = sweep.scheduler.metric
    for field, name in named.items():
        problems = [metric_problem(name, *metric_settings(cfg)) for cfg in configs]
        if all(problems):
            raise ConfigError(f"{field}: no trial reports {excerpt(name)}: {problems[0]}")
