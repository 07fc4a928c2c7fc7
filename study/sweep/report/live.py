"""The frontier kept up to date while a sweep runs: a Tune callback in the driver that redraws the parent run's
table, plots and interactive page as trials report stages (at most every ``every`` seconds). It keeps what it
read (:class:`study.sweep.report.rows.StageRows`), so a refresh reads only the runs that reported since the
last one and redraws nothing when none did; the sweep's closing frontier starts from the same reader."""
from __future__ import annotations

import time

from ray.tune import Callback


class LiveFrontier(Callback):
    def __init__(self, tracking_uri: str, experiment_id: str, parent_id: str, objectives: dict[str, str],
                 every: float = 30.0, log=print):
        self.tracking_uri, self.experiment_id, self.parent_id = tracking_uri, experiment_id, parent_id
        self.objectives, self.every, self.log = dict(objectives), every, log
        self.last = float("-inf")
        self.seconds: list[float] = []  # how long each refresh took (the scale benchmark reads it)
        self._reader = None

    def __getstate__(self) -> dict:  # Tune saves its callbacks with the sweep's state: no live client in it
        return {**self.__dict__, "_reader": None, "log": print}

    @property
    def reader(self):
        """The stage rows read so far (made on first use, after a restore too)."""
        if self._reader is None:
            from study.sweep.report.rows import StageRows
            from study.sweep.tracking import client_for

            self._reader = StageRows(client_for(self.tracking_uri), self.experiment_id, self.parent_id,
                                     list(self.objectives))
        return self._reader

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        from study.sweep.report.frontier import refresh_frontier

        try:
            refresh_frontier(self.reader, self.objectives)
        except Exception as error:  # noqa: BLE001 - a live view that fails must never stop the sweep
            self._reader = None  # read afresh next time: what it held may be half-updated
            self.log(f"warning: the live frontier was not updated ({type(error).__name__}: {str(error)[:200]})")
        self.seconds.append(time.monotonic() - now)
