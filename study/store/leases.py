"""Exclusive, expiring leases on stage keys, so that two trials never train the same stage at once.

A trial that needs a stage nobody has finished claims the stage's key. While it trains, a heartbeat thread
renews the lease. If the claimant dies (a killed worker, a lost node), its heartbeat stops, the lease
expires after ``LEASE_SECONDS`` and the next trial that asks takes the stage over from its last training
checkpoint in the store.

Leases belong to the storage, not to one sweep, so that sweeps sharing a storage train a shared stage once.
On a local or shared file system they are files beside the store (:class:`FileLeases`), which hold across
drivers, Ray instances and nodes that see the folder; on object storage (``s3://``), which has no lock, they
live in one named Ray actor per storage (:mod:`study.sweep.leases`), reached by every trial of the sweeps on
that Ray cluster. A single trial without a sweep uses a :class:`LeaseTable` in its own process.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from filelock import FileLock

# How long a lease lives without a heartbeat. A takeover waits at most this long after a claimant died.
LEASE_SECONDS = float(os.environ.get("PRIOR_STUDY_LEASE_SECONDS", "60"))
LEASES = "_leases"  # the lease files' folder inside a local stage store


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


class FileLeases:
    """The :class:`LeaseTable` interface as one small JSON file per key under ``folder`` (holder and expiry in
    wall-clock seconds), each read and written under its own file lock."""

    def __init__(self, folder: str | Path, seconds: float = LEASE_SECONDS):
        self.folder, self.seconds = Path(folder), seconds
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key.replace('/', '__')}.json"

    def _locked(self, key: str) -> FileLock:
        return FileLock(str(self._path(key)) + ".lock", timeout=60)

    def _current(self, key: str) -> tuple[str, float] | None:
        try:
            lease = json.loads(self._path(key).read_text())
            return lease["holder"], float(lease["expires"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or a write cut short: nobody holds it

    def _write(self, key: str, holder: str) -> None:
        path = self._path(key)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"holder": holder, "expires": time.time() + self.seconds}))
        tmp.replace(path)

    def claim(self, key: str, holder: str) -> tuple[bool, str]:
        with self._locked(key):
            current = self._current(key)
            if current is None or current[1] < time.time() or current[0] == holder:
                self._write(key, holder)
                return True, holder
            return False, current[0]

    def renew(self, key: str, holder: str) -> bool:
        with self._locked(key):
            current = self._current(key)
            if current is None or current[0] != holder:
                return False
            self._write(key, holder)
            return True

    def release(self, key: str, holder: str) -> None:
        with self._locked(key):
            current = self._current(key)
            if current is not None and current[0] == holder:
                self._path(key).unlink(missing_ok=True)


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
