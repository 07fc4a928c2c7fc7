"""The sweep YAML: a base trial configuration, a search space over its dotted keys, and how to search it.

Validated completely before anything starts: every grid combination (with the low end of every random
range) is applied to the base and validated as a :class:`study.config.TrialConfig`, so a mistake in any
trial is reported with its field path before Ray, MLflow or a folder exist.
"""
from __future__ import annotations

import copy
import itertools
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from study.config import TrialConfig
from study.configio import ConfigError, describe_validation_error

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dimension(Strict):
    """Exactly one of: ``grid: [values]``, ``choice: [values]``, ``uniform: [lo, hi]``, ``loguniform: [lo, hi]``,
    ``randint: [lo, hi)``. Grid and choice values may be mappings, merged into the section the key names."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

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


class SearchConfig(Strict):
    kind: Literal["grid", "random", "optuna"] = "grid"
    sampler: Literal["tpe", "nsga2", "gp"] = "tpe"
    objectives: dict[str, Literal["max", "min"]] = Field(default_factory=lambda: {"auroc": "max", "si_sdr": "max"})
    num_samples: int = Field(1, ge=1)  # grid: repeats of the grid; random/optuna: number of trials
    seed: int = 0

    @field_validator("objectives")
    @classmethod
    def _some_objective(cls, value):
        if not value:
            raise ValueError("name at least one objective, e.g. {auroc: max}")
        return value


class SchedulerConfig(Strict):
    kind: Literal["fifo", "asha"] = "fifo"
    metric: str | None = None  # ASHA: defaults to the single objective
    mode: Literal["max", "min"] | None = None
    grace_period: int = Field(1, ge=1)  # in reported stages
    reduction_factor: float = Field(2.0, gt=1)
    max_t: int = Field(100, ge=1)


class Resources(Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class MlflowConfig(Strict):
    tracking_uri: str = "sqlite:///mlflow.db"


class FailureSettings(Strict):
    max_failures: int = Field(0, ge=-1)


class RaySettings(Strict):
    address: str | None = None  # None: start Ray locally; "auto" or "ray://host:10001" for a cluster


class SweepConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    experiment: str | None = None  # MLflow experiment; default: the sweep name
    base: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Dimension] = Field(default_factory=dict)
    search: SearchConfig = Field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: int | None = Field(None, ge=1)
    storage: str = "runs/ray"
    # Trials reuse each other's identical stages through the stage store <storage>/stages; false gives
    # every trial a private store (still resumable), e.g. to measure what sharing saves.
    share_stages: bool = True
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    failure: FailureSettings = Field(default_factory=FailureSettings)
    ray: RaySettings = Field(default_factory=RaySettings)

    @model_validator(mode="after")
    def _combinations_that_work(self):
        if self.scheduler.kind == "asha" and len(self.search.objectives) > 1:
            raise ValueError("scheduler.kind=asha cannot be combined with several search.objectives: trials "
                             "it stops early would enter the Pareto set with partial results; use "
                             "scheduler.kind=fifo or a single objective")
        grids = [key for key, dim in self.space.items() if dim.kind == "grid"]
        if self.search.kind == "optuna" and grids:
            raise ValueError(f"search.kind=optuna cannot search grid dimensions {grids}; use choice instead")
        return self

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name

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


def deep_merge(tree: dict, update: dict) -> dict:
    merged = copy.deepcopy(tree)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_path(tree: dict, dotted: str, value) -> None:
    """tree[a][b][c] = value for "a.b.c"; a mapping value is merged into an existing section, and the value
    of the ``variant`` key is merged into the whole tree (to change linked settings together)."""
    if dotted == VARIANT:
        if not isinstance(value, dict):
            raise ConfigError(f"space.{VARIANT}: values must be mappings of trial settings, got {value!r}")
        tree.update(deep_merge(tree, value))
        return
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"space.{dotted}: {part} is a value, not a section")
    if isinstance(value, dict) and isinstance(node.get(leaf), dict):
        node[leaf] = deep_merge(node[leaf], value)
    else:
        node[leaf] = copy.deepcopy(value)


def trial_tree(base: dict, assignment: dict[str, Any]) -> dict:
    tree = copy.deepcopy(base)
    for key, value in assignment.items():
        set_path(tree, key, value)
    return tree


def validate_space(sweep: SweepConfig) -> None:
    """Validate every combination the sweep can produce (grid values, both ends of random ranges) against
    the trial schema; raise ConfigError naming the field paths, and the combinations where they fail."""
    keys = list(sweep.space)
    failures: dict[str, list[str]] = {}
    combos = list(itertools.product(*(sweep.space[k].representatives() for k in keys)))
    for combo in combos:
        assignment = dict(zip(keys, combo))
        try:
            TrialConfig.model_validate(trial_tree(sweep.base, assignment))
        except ValidationError as error:
            shown = ", ".join(f"{k}={v!r}" for k, v in assignment.items())
            failures.setdefault(describe_validation_error(error, prefix="base."), []).append(shown)
    if not failures:
        return
    lines = []
    for message, where in failures.items():
        if len(where) < len(combos):
            more = f"; and {len(where) - 3} more" if len(where) > 3 else ""
            message += f"\n  (in trials with {'; '.join(where[:3])}{more})"
        lines.append(message)
    raise ConfigError("invalid trial configuration\n" + "\n".join(lines))
