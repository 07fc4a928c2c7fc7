"""Throughput of the priors: training and evaluation samples/s, median of repeats, on the current device.

    python -m benchmarks.run                 # toy (paper) and small sizes, markdown table + JSON
    python -m benchmarks.run --sizes small --repeats 3 --json out.json

Training: one optimiser step of all 4 grouped source priors per iteration (forward, backward, Adam), at the
published crop (flow 16 384, WaveNet 3 075) and batch 2. "Source-samples/s" counts every source's samples
(batch × crop × K). Evaluation: log p without gradients at crop 4 000, batch 16.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from models import build_prior
from study.runtime import autocast, pick_device

CASES = {  # (prior, training crop)
    "flowavenet": 16384,
    "wavenet": 3075,
}
EVAL_CROP, EVAL_BATCH, SOURCES = 4000, 16, 4


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, iterations: int, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per iteration, one figure per repeat."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        sync(device)
        times.append((time.perf_counter() - t0) / iterations)
    return times


def bench_prior(name: str, size: str, device, repeats: int, batch: int, iterations: int) -> dict:
    torch.manual_seed(0)
    prior = build_prior(name, preset=size, num_sources=SOURCES).to(device)
    crop = CASES[name] if size in ("toy", "musdb") else min(CASES[name], 4096)
    crop -= crop % getattr(prior, "length_multiple", 1)
    x = (torch.rand(batch, SOURCES, crop, device=device) * 2 - 1) * 0.8
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-4)
    prior.train()

    def train_step():
        with autocast(device):
            loss = prior.nll_per_sample(x).float().mean(0).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train_times = timed(train_step, device, iterations, repeats)
    prior.eval()
    xe = (torch.rand(EVAL_BATCH, SOURCES, EVAL_CROP - EVAL_CROP % getattr(prior, "length_multiple", 1),
                     device=device) * 2 - 1) * 0.8

    @torch.no_grad()
    def eval_step():
        with autocast(device):
            prior.log_prob(xe)

    eval_times = timed(eval_step, device, max(1, iterations // 2), repeats)
    train_rate = batch * crop * SOURCES / statistics.median(train_times)
    eval_rate = xe.numel() / statistics.median(eval_times)
    return {"prior": name, "size": size, "params_per_source": prior.num_parameters(per_source=True),
            "train_crop": crop, "batch": batch, "train_source_samples_per_s": round(train_rate),
            "eval_source_samples_per_s": round(eval_rate), "eval_over_train": round(eval_rate / train_rate, 2),
            "train_s_per_step_runs": [round(t, 4) for t in train_times]}


def machine() -> str:
    device = pick_device()
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {gpu}, "
            f"torch {torch.__version__}")


def markdown(rows: list[dict]) -> str:
    head = "| prior | size | params/source | train crop × batch | train source-samples/s | eval source-samples/s | eval/train |\n"
    head += "|---|---|---|---|---|---|---|\n"
    return head + "".join(
        f"| {r['prior']} | {r['size']} | {r['params_per_source']:,} | {r['train_crop']} × {r['batch']} | "
        f"{r['train_source_samples_per_s']:,} | {r['eval_source_samples_per_s']:,} | {r['eval_over_train']} |\n"
        for r in rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["toy", "small"])
    parser.add_argument("--priors", nargs="+", default=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device()
    rows = [bench_prior(p, s, device, args.repeats, args.batch, args.iterations) for s in args.sizes for p in args.priors]
    print(f"device: {machine()}\n")
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
