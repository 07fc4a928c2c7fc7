"""The trials' stage rows, read from MLflow: one row per (trial, stage), shared stages included.

Each stage's metrics are logged at step = stage index, so a row needs the run's metric histories (one request
per metric). A :class:`StageRows` keeps what it read and reads a run again only when what the run listing
shows of it changed (status, end, tags, latest metric values): the live frontier's refresh then costs one
listing of the runs plus the runs that reported since the last refresh, however many trials the sweep has.
"""
from __future__ import annotations

import time

import pandas as pd

from study.measure.names import COMPUTE, SMOOTHNESS
from study.sweep.tracking import STOPPED_TAG, child_runs, mlflow_name

# what every frontier view shows beside the objectives (hover, table, reference lines)
CONTEXT_METRICS = ("stage", "stage_sigma", "auroc", "si_sdri", "si_sdr_se", "si_sdri_se", "sdr_se", "separation_moved",
                   "si_sdr_mixture",
                   "separation_diverged", "si_sdr_oracle_start", "si_sdri_oracle_start", "si_sdr_supervised",
                   "si_sdri_supervised", "likelihood_gap", "si_sdri_amortised", "si_sdri_amortised_se",
                   "likelihood_gap_amortised", "amortised_speedup", *COMPUTE)


# how far a trial node's clock may lag the driver's: a run that ended this long before the last listing is
# still listed again by the next one
CLOCK_SKEW_MS = 30_000


class StageRows:
    """The stage rows of one sweep's trials, kept between reads (``read``); ``runs_read`` counts the runs
    whose histories were fetched, ``changed`` says whether the last read found anything new.

    After the first read, a read lists only the runs still running or ended since the last listing (less
    :data:`CLOCK_SKEW_MS`): a run that has ended changes no more, except when the sweep closes it, so the
    sweep's closing frontier reads with ``everything=True``."""

    def __init__(self, client, experiment_id: str, parent_id: str, metrics):
        self.client, self.experiment_id, self.parent_id = client, experiment_id, parent_id
        self.metrics = list(metrics)
        self._known: dict[str, tuple[tuple, int, list[dict]]] = {}  # run id -> (listing mark, start, rows)
        self._listed_at: int | None = None  # ms, the driver's clock
        self.runs_read = 0
        self.changed = True

    def read(self, everything: bool = False) -> pd.DataFrame:
        """Every trial's rows now."""
        since = None if everything or self._listed_at is None else self._listed_at - CLOCK_SKEW_MS
        self._listed_at = int(time.time() * 1000)
        runs = child_runs(self.client, self.experiment_id, self.parent_id, since_ms=since)
        self.changed = False
        for run in runs:
            seen = listing_mark(run)
            known = self._known.get(run.info.run_id)
            if known is None or known[0] != seen:
                self._known[run.info.run_id] = (seen, run.info.start_time, run_rows(self.client, run, self.metrics))
                self.runs_read += 1
                self.changed = True
        if everything:  # a run deleted since is gone from the views too
            listed = {run.info.run_id for run in runs}
            self.changed |= any(run_id not in listed for run_id in self._known)
            self._known = {run_id: known for run_id, known in self._known.items() if run_id in listed}
        newest_first = sorted(self._known.items(), key=lambda item: (-item[1][1], item[0]))  # as MLflow lists
        return pd.DataFrame([row for _, (_, _, rows) in newest_first for row in rows])


def listing_mark(run) -> tuple:
    """What a run listing shows of a run: a run whose mark is unchanged has nothing new to read."""
    return (run.info.status, run.info.end_time, tuple(sorted(run.data.tags.items())),
            tuple(sorted(run.data.metrics.items())))


def run_rows(client, run, metrics) -> list[dict]:
    """One trial's rows: each stage's values of the context metrics, its smoothness levels and ``metrics``."""
    params = run.data.params
    per_step: dict[int, dict] = {}
    logged_at: dict[int, int] = {}  # when each stage's metrics arrived (ms): the order compute was spent in
    smoothness = [name.replace(mlflow_name("@"), "@") for name in run.data.metrics
                  if name.startswith(mlflow_name(f"{SMOOTHNESS}@"))]
    for name in dict.fromkeys([*CONTEXT_METRICS, *smoothness, *metrics]):
        if mlflow_name(name) not in run.data.metrics:
            continue
        for point in client.get_metric_history(run.info.run_id, mlflow_name(name)):
            per_step.setdefault(point.step, {})[name] = point.value
            logged_at[point.step] = max(logged_at.get(point.step, 0), point.timestamp)
    return [{"run": run.info.run_name, "run_id": run.info.run_id, "status": run.info.status,
             "architecture": params.get("prior.name"), "schedule": params.get("schedule.kind"),
             "target_sigma": float(params.get("schedule.sigma", "nan")), "stage": step,
             "stage_key": run.data.tags.get(f"study.stage{step}.key"), "logged_at": logged_at[step],
             "stopped_early": run.data.tags.get(STOPPED_TAG), **values}
            for step, values in sorted(per_step.items())]


def stage_rows(client, experiment_id: str, parent_id: str, metrics) -> pd.DataFrame:
    """One read of every trial's rows (a view drawn once; the live frontier keeps a :class:`StageRows`)."""
    return StageRows(client, experiment_id, parent_id, metrics).read()
