"""The frontier kept up to date while a sweep runs: a Tune callback in the driver that redraws the parent run's
table, plots and interactive page as trials report stages (at most every ``every`` seconds)."""
from __future__ import annotations

import time

from ray.tune import Callback


class LiveFrontier(Callback):
    def __init__(self, tracking_uri: str, experiment_id: str, parent_id: str, objectives: dict[str, str],
                 every: float = 30.0, log=print):
        self.tracking_uri, self.experiment_id, self.parent_id = tracking_uri, experiment_id, parent_id
        self.objectives, self.every, self.log = dict(objectives), every, log
        self.last = float("-inf")
        self._client = None

    def __getstate__(self) -> dict:  # Tune saves its callbacks with the sweep's state: no live client in it
        return {**self.__dict__, "_client": None, "log": print}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        from study.sweep.report.frontier import refresh_frontier
        from study.sweep.tracking import client_for

        try:
            self._client = self._client or client_for(self.tracking_uri)
            refresh_frontier(self._client, self.experiment_id, self.parent_id, self.objectives)
        except Exception as error:  # noqa: BLE001 - a live view that fails must never stop the sweep
            self.log(f"warning: the live frontier was not updated ({type(error).__name__}: {str(error)[:200]})")
