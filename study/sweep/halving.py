"""Successive halving over stages for several objectives at once (``scheduler.kind: pareto_halving``).

Ray Tune's schedulers take one metric, and Optuna cannot prune a multi-objective study, so a Pareto study
could not stop hopeless trials early. Here the rungs are stage boundaries: after ``grace_period`` reported
stages, then ``grace_period·η``, ``grace_period·η²`` …, a trial goes on only if it is among the best
⌈n/η⌉ of the n trials that reached that rung so far, ranked by non-dominated sorting over every objective it
reported there (NSGA-II fronts, then crowding distance within a front). Decisions are asynchronous (as in
ASHA): a trial is judged against those that reached the rung before it, and never waits for the others.

The records and decisions are written to ``<storage>/<sweep>.rungs.json`` after each decision (beside Tune's
experiment folder, not in it: Tune re-uploads its own copy of that folder on every save), so a resumed sweep
keeps every decision already made: a trial judged before a crash gets the same answer again (its finished
stages come from the stage store), and a stopped trial is not restarted by Tune.
"""
from __future__ import annotations

import json
import math

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from study.store.stage_store import StageStore
from study.sweep.config import milestones
from study.measure.pareto import oriented, ranking


def rungs_file(sweep_name: str) -> str:
    """Where a sweep's rung records live, relative to its storage root."""
    return f"{sweep_name}.rungs.json"


def keeps(points: list[tuple[float, ...]], index: int, reduction: float) -> bool:
    """Whether point ``index`` is among the best ⌈n/η⌉ of the n ``points`` (ties go on together)."""
    rank = ranking(points)
    better = sum(other < rank[index] for other in rank)
    return better < math.ceil(len(points) / reduction)


class ParetoHalving(FIFOScheduler):
    """Tune scheduler: stop a trial at a rung (a stage boundary) when it is not in the best 1/η of the trials
    that reached that rung, by Pareto rank over ``objectives`` ({metric: "max" | "min"})."""

    def __init__(self, objectives: dict[str, str], grace_period: int, reduction_factor: float,
                 root: str | None = None, record: str | None = None):
        super().__init__()
        self.objectives, self.grace, self.reduction = dict(objectives), grace_period, reduction_factor
        self.root, self.record = root, record  # the storage root and the records' file in it (None: memory only)
        # rung (reported-stage count) -> records in arrival order: {"trial", "values", "decision"}
        self.rungs: dict[str, list[dict]] = self._load()

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives come from the sweep, not from Tune's single metric

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if "stage" not in result or "stages" not in result:
            return TrialScheduler.CONTINUE
        reported = int(result["stage"]) + 1
        if reported not in milestones(self.grace, self.reduction, int(result["stages"])):
            return TrialScheduler.CONTINUE
        records = self.rungs.setdefault(str(reported), [])
        earlier = next((r for r in records if r["trial"] == trial.trial_id), None)
        if earlier is not None:  # judged before a restart: the same answer (its stages come from the store)
            return TrialScheduler.STOP if earlier["decision"] == "stop" else TrialScheduler.CONTINUE
        values = {name: float(result[name]) for name in self.objectives
                  if isinstance(result.get(name), (int, float)) and math.isfinite(result[name])}
        decision = "continue"
        if values:
            same = [r for r in records if set(r["values"]) == set(values)] + [{"values": values}]
            names = sorted(values)
            points = [tuple(row) for row in oriented([[r["values"][n] for n in names] for r in same],
                                                     [self.objectives[n] for n in names])]
            decision = "continue" if keeps(points, len(points) - 1, self.reduction) else "stop"
        records.append({"trial": trial.trial_id, "values": values, "decision": decision})
        self._save()
        return TrialScheduler.STOP if decision == "stop" else TrialScheduler.CONTINUE

    def __setstate__(self, state: dict) -> None:
        """Unpickled by ``Tuner.restore`` as it was when the sweep started: read the decisions made since."""
        self.__dict__.update(state)
        self.rungs = self._load()

    def stopped(self) -> dict[str, int]:
        """Tune trial id -> the rung (reported stages) it was stopped at."""
        return {r["trial"]: int(rung) for rung, records in self.rungs.items() for r in records
                if r["decision"] == "stop"}

    def debug_string(self) -> str:
        return (f"Pareto successive halving (η={self.reduction:g}, first rung after {self.grace} stage(s)): "
                f"{len(self.stopped())} trial(s) stopped early.")

    def _load(self) -> dict[str, list[dict]]:
        if self.root is None:
            return {}
        saved = StageStore(self.root).read_bytes(self.record)
        if not saved:
            return {}
        try:
            return json.loads(saved)["rungs"]
        except (ValueError, KeyError, TypeError) as error:  # never decide on records that cannot be read
            raise ValueError(f"{self.root}/{self.record}: unreadable rung records ({error}); delete the file to "
                             "judge every trial anew, or run the sweep with --restart") from None

    def _save(self) -> None:
        if self.root is not None:
            StageStore(self.root).write_bytes(self.record, json.dumps({"rungs": self.rungs}, indent=1).encode())


def stopped_early(root: str, sweep_name: str) -> dict[str, int]:
    """The decisions saved for a sweep (trial id -> rung it was stopped at); empty without a record."""
    return ParetoHalving({}, 1, 2, root, rungs_file(sweep_name)).stopped()


def forget(root: str, sweep_name: str) -> None:
    """A sweep started afresh (``--restart``) makes its decisions anew."""
    StageStore(root).delete(rungs_file(sweep_name))
