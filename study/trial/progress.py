"""Progress lines for long work (training, evaluation, separation)."""
from __future__ import annotations

import time


class Progress:
    """``progress(done, total, what)`` for long work: one line at most every ``every`` seconds, with an ETA."""

    def __init__(self, log, title: str, every: float = 15.0):
        self.log, self.title, self.every = log, title, every
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.perf_counter()
        if now - self.last < self.every or done >= total:
            return
        self.last = now
        left = (now - self.start) / done * (total - done)
        self.log(f"{self.title}: {done}/{total} ({what}), {now - self.start:.0f} s so far, about {left:.0f} s left")
