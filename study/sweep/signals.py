"""Ctrl-C and SIGTERM stop a sweep the same graceful way."""
from __future__ import annotations

import signal


class StopSignals:
    """Makes SIGINT and SIGTERM stop the sweep the same graceful way, and remembers which one did.

    Tune installs its own SIGINT handler inside ``fit()`` and, on the first Ctrl-C, ends the run cleanly and
    puts back the handler it found, which is ours; so if ours is in place after ``fit()`` returns, Tune was
    interrupted. SIGTERM (sent by Kubernetes, Slurm and ``timeout``) is forwarded to Tune's handler. A second
    signal reaches our handler, which raises KeyboardInterrupt to stop at once.
    """

    def __init__(self):
        self.received = 0

    def _on_sigint(self, signum, frame):
        self.received = self.received or signum
        raise KeyboardInterrupt

    def _on_sigterm(self, signum, frame):
        self.received = signal.SIGTERM
        current = signal.getsignal(signal.SIGINT)
        if callable(current) and current != self.on_sigint:
            current(signal.SIGINT, frame)  # Tune's graceful stop
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        self.on_sigint = self._on_sigint
        self.previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGINT, self.on_sigint)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc) -> bool:
        if not self.received and signal.getsignal(signal.SIGINT) == self.on_sigint:
            self.received = signal.SIGINT  # Tune caught a Ctrl-C and restored our handler
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False
