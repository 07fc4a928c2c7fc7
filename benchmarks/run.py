"""All performance figures in one table (markdown on stdout, JSON with --json).

    python -m benchmarks.run --threads 2 --json benchmarks/latest.json
    python -m benchmarks.run --only priors --sizes small        # a subset
    python -m benchmarks.run --only priors --sizes toy --reference ~/src/unsupervised-source-separation

Sections (``precision``: bf16 against float32 for one log p pass, to see whether this CPU does bf16 natively;
``compile``, torch.compile of the training step on and off, only when named): prior
training/evaluation throughput (toy and small sizes; with ``--reference`` the published implementation's
training step is timed beside ours at the toy sizes and the ratio reported), Langevin separation speed,
the split over CPU cores (study.runtime.cores) on and off,
sweep overhead/concurrency, what stage sharing saves (a shrunk noise_frontier with sharing on and off),
tracking under load (32 processes against an mlflow server on sqlite and on PostgreSQL), and a trial's
peak memory on a 10-hour stems folder against a 1-hour one. Medians of repeats, measured side by side in one run; no timing is ever asserted in tests.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from study.runtime.machine import cpu_capability
from study.runtime.precision import PRECISIONS
from study.runtime.device import pick_device

from .common import machine, table
from .compile import bench_compile
from .cores import bench_cores
from .frontier_search import bench_frontier_search
from .langevin import bench_langevin
from .memory import bench_memory
from .precision import bench_precision
from .priors import bench_prior
from .scale import bench_scale
from .sharing import bench_sharing
from .sweep_overhead import bench_sweep
from .tracking_load import bench_tracking

SECTIONS = ("precision", "priors", "langevin", "cores", "compile", "sweep", "sharing", "frontier_search", "tracking",
            "memory", "scale")
# compiling, the three searches and the thousand-trial sweeps take many minutes: only when named
DEFAULT_SECTIONS = [section for section in SECTIONS if section not in ("compile", "frontier_search", "scale")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=DEFAULT_SECTIONS)
    parser.add_argument("--sizes", nargs="+", default=["toy", "small"])
    parser.add_argument("--priors", nargs="+", default=["flowavenet", "wavenet"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=PRECISIONS[1:],
                        help="autocast settings the priors section measures (study.runtime.device.autocast)")
    parser.add_argument("--reference", default=None,
                        help="a checkout of morris-frank/unsupervised-source-separation, timed beside our priors")
    parser.add_argument("--hours", nargs="+", type=float, default=[1.0, 10.0],
                        help="sizes of the stems folders the memory section compares")
    parser.add_argument("--scale-sizes", nargs="+", type=int, default=[10, 100, 1000],
                        help="numbers of trials the scale section sweeps")
    parser.add_argument("--scale-tracking", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"], help="tracking stores the scale section sweeps on")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device()
    results = {"machine": machine()}
    if "precision" in args.only:
        results["precision"] = [bench_precision(p, s, device, args.repeats) for s in args.sizes for p in args.priors]
    if "priors" in args.only:
        results["priors"] = [bench_prior(p, s, device, args.repeats, reference=args.reference, precision=precision)
                             for s in args.sizes for p in args.priors for precision in args.precisions]
    if "langevin" in args.only:
        results["langevin"] = [bench_langevin(p, s, device, max(1, args.repeats // 2), precision=precision)
                               for s in args.sizes for p in args.priors for precision in args.precisions]
    if "cores" in args.only:
        results["cores"] = [bench_cores(p, s, device, args.repeats, precision=precision)
                            for s in args.sizes for p in args.priors for precision in args.precisions]
    if "compile" in args.only:
        results["compile"] = [bench_compile(p, "toy", device, args.repeats, precision=precision)
                              for p in args.priors for precision in args.precisions]
    if "sweep" in args.only:
        results["sweep"] = [bench_sweep("trivial"), bench_sweep("short")]
    if "sharing" in args.only:
        results["sharing"] = bench_sharing()
    if "frontier_search" in args.only:
        results["frontier_search"] = bench_frontier_search(  # the curves drawn beside the JSON
            plot=Path(args.json).with_name("frontier_search.png") if args.json else None)
    if "tracking" in args.only:
        results["tracking"] = bench_tracking()
    if "memory" in args.only:
        results["memory"] = bench_memory(args.hours)
    if "scale" in args.only:
        results["scale"] = bench_scale(args.scale_sizes, args.scale_tracking)
    print(f"device: {results['machine']}")
    for section in SECTIONS:
        if section in results:
            for row in results[section]:  # bf16 figures mean nothing without it (30x slower when emulated)
                row.setdefault("cpu", cpu_capability())
            print(f"\n### {section}\n\n{table(results[section])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
