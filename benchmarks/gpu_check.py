"""Training throughput on the GPU beside the README's on-paper estimate (benchmarks/gpu_check.sh runs it).

    python -m benchmarks.gpu_check

The estimate ("GPU on paper" in the README: 1-2 × 10⁷ source-samples/s on one H100 at a batch of 64) is for
a large batch; the paper's batch of 2 is launch-bound, so both are measured, in float32 and under AMP (bf16).
"""
from __future__ import annotations

import torch

from .common import machine, table
from .priors import bench_prior

ON_PAPER = "1-2 × 10⁷ (H100 SXM, batch 64, README \"GPU on paper\")"


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to measure")
        return
    device = torch.device("cuda")
    rows = []
    for name in ("wavenet", "flowavenet"):
        for batch in (2, 64):
            for precision in ("float32", "bfloat16"):
                row = bench_prior(name, "toy", device, repeats=5, batch=batch, precision=precision)
                rows.append({"prior": name, "batch": batch, "precision": precision,
                             "train_source_samples_per_s": row["train_source_samples_per_s"],
                             "on_paper": ON_PAPER})
    print(f"device: {machine()}\n\n{table(rows)}")


if __name__ == "__main__":
    main()
