"""``torch.compile`` (inductor, C++ on CPU) of the training loss, timed on and off in one process.

The eager and compiled training steps (loss, backward, per-source clipping, Adam) of one toy prior alternate
repeat by repeat (:func:`benchmarks.priors.alternating`); the compile time itself is reported apart.
Not in the default sections: compiling a toy prior takes one to two minutes on 2 cores.
"""
from __future__ import annotations

import time

import torch

from models import build_prior
from study.train import training_loss

from .common import median
from .priors import SOURCES, alternating, training_step


def bench_compile(name: str, size: str, device, repeats: int, batch: int = 2, precision: str = "float32") -> dict:
    torch.manual_seed(0)
    prior = build_prior(name, preset=size, num_sources=SOURCES).to(device)
    eager, crop = training_step(prior, name, size, device, batch, precision)
    compiled, _ = training_step(prior, name, size, device, batch, precision, loss_fn=torch.compile(training_loss))
    t0 = time.perf_counter()
    compiled()  # the first call compiles
    compile_seconds = time.perf_counter() - t0
    eager_times, compiled_times = alternating(eager, compiled, device, repeats)
    return {"prior": name, "size": size, "precision": precision, "compile_seconds": round(compile_seconds, 1),
            "eager_train_source_samples_per_s": round(batch * crop * SOURCES / median(eager_times)),
            "compiled_train_source_samples_per_s": round(batch * crop * SOURCES / median(compiled_times)),
            "compiled_over_eager": round(median(eager_times) / median(compiled_times), 2)}
