"""Exclusive, expiring leases on stage keys, so that two trials never train the same stage at once.

A trial that needs a stage nobody has finished claims the stage's key. While it trains, a heartbeat thread
renews the lease. If the claimant dies (a killed worker, a lost node), its heartbeat stops, the lease
expires after ``LEASE_SECONDS`` and the next trial that asks takes the stage over from its last training
checkpoint in the store.

In a sweep the table lives in one named Ray actor created by the driver, which every trial on every node
reaches by name (:mod:`study.sweep.leases`); a single trial without Ray uses a :class:`LeaseTable` in its own
process.
"""
from __future__ import annotations

import os
import threading
import time

# How long a lease lives without a heartbeat. A takeover waits at most this long after a claimant died.
LEASE_SECONDS = float(os.environ.get("PRIOR_STUDY_LEASE_SECONDS", "60"))


class LeaseTable:
    """key -> (holder, expiry). Plain Python: used directly in one process, or as a Ray actor."""

    def __init__(self, seconds: float = LEASE_SECONDS):
        self.seconds = seconds
        self.leases: dict[str, tuple[str, float]] = {}

    def claim(self, key: str, holder: str) -> tuple[bool, str]:
        """(granted, current holder). Granted when the key is free, expired, or already this holder's."""
        now = time.monotonic()
        current = self.leases.get(key)
        if current is None or current[1] < now or current[0] == holder:
            self.leases[key] = (holder, now + self.seconds)
            return True, holder
        return False, current[0]

    def renew(self, key: str, holder: str) -> bool:
        current = self.leases.get(key)
        if current is None or current[0] != holder:
            return False
        self.leases[key] = (holder, time.monotonic() + self.seconds)
        return True

    def release(self, key: str, holder: str) -> None:
        if self.leases.get(key, ("",))[0] == holder:
            del self.leases[key]


class Heartbeat:
    """Renews ``key`` for ``holder`` every third of the lease's life until stopped (a context manager)."""

    def __init__(self, leases, key: str, holder: str, log=print):
        self.leases, self.key, self.holder, self.log = leases, key, holder, log
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lease-{key}", daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(LEASE_SECONDS / 3):
            try:
                if not self.leases.renew(self.key, self.holder):
                    self.log(f"warning: lost the lease on stage {self.key}; another trial may train it too")
            except Exception as error:  # noqa: BLE001 - a failed renewal must not kill training
                self.log(f"warning: could not renew the lease on stage {self.key}: {error}")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self.leases.release(self.key, self.holder)
