"""Independent pieces of work on every CPU core at once, one single-threaded worker per core.

A toy prior's convolutions are small (32-64 channels per source), and oneDNN spreads one of them poorly over
cores (see the README's Performance section for how much). Work that
splits into independent pieces (halves of a training batch, passes of clips, Langevin chains) runs instead
with each piece on its own core, one thread each, and every core stays busy. ``benchmarks.run --only cores``
times both ways in one run.

The pieces run in threads of this process (ATen releases the GIL inside its kernels), so they share the
model and its parameters without copies. Grad mode and CPU autocast are thread-local in PyTorch: each
piece runs under the caller's. On a GPU, with one core, or with one piece, everything runs in the caller.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")

_enabled = True
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None  # (process id, workers): a forked child or a new thread count rebuilds it
_lock = threading.Lock()


def use_cores(enabled: bool) -> None:
    """Switch the split on or off for this process (benchmarks time both ways; off = the caller does all)."""
    global _enabled
    _enabled = enabled


def cores(device) -> int:
    """How many pieces work should be split into on ``device``: the intra-op threads on CPU, else 1."""
    if not _enabled or torch.device(device).type != "cpu":
        return 1
    return torch.get_num_threads()


def _single_thread(ready: threading.Barrier) -> None:
    # OpenMP's thread count is per thread. ATen sets a new thread's to the process default on its first call,
    # so make that call before setting this worker's to 1 (or the first op would put it back).
    torch.get_num_threads()
    torch.set_num_threads(1)
    ready.wait()


def _workers(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    with _lock:
        if _pool_key != (os.getpid(), n):
            if _pool is not None and _pool_key[0] == os.getpid():
                _pool.shutdown(wait=True)
            ready = threading.Barrier(n)
            _pool = ThreadPoolExecutor(n, thread_name_prefix="core")
            # Start all n workers now (each waits for the others), so that each sets its own threads to 1
            # before any work arrives; torch.set_num_threads also sets the process default: put it back.
            list(_pool.map(lambda _: _single_thread(ready), range(n)))
            torch.set_num_threads(n)
            _pool_key = (os.getpid(), n)
        return _pool


def on_cores(fn: Callable[[T], object], pieces: Sequence[T], device) -> list:
    """[fn(piece) for piece in pieces], the pieces spread over the CPU cores (see the module docstring)."""
    n = cores(device)
    if n < 2 or len(pieces) < 2:
        return [fn(piece) for piece in pieces]
    grad = torch.is_grad_enabled()
    inference = torch.is_inference_mode_enabled()
    autocast = torch.is_autocast_enabled("cpu")
    dtype = torch.get_autocast_dtype("cpu")

    def run(piece):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad), \
                torch.autocast("cpu", dtype=dtype, enabled=autocast):
            return fn(piece)

    return list(_workers(n).map(run, pieces))


def batch_parts(size: int, device) -> list[slice]:
    """A batch of ``size`` examples cut into one contiguous part per core (fewer when the batch is smaller)."""
    parts = max(1, min(cores(device), size))
    bounds = [round(i * size / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def map_batch(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """fn over the batch x ([B, ...] -> [B, ...], examples independent), one part of the batch per core."""
    parts = batch_parts(len(x), x.device)
    if len(parts) == 1:
        return fn(x)
    return torch.cat(on_cores(lambda part: fn(x[part]), parts, x.device))
