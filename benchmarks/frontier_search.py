"""What early stopping by Pareto rank buys: one shrunk search space searched three ways, side by side.

    python -m benchmarks.run --only frontier_search

The space: both architectures at two tiny sizes, σ* (a grid of three for the grid search, continuous for the
others), all three schedules, a few dozen steps per stage; objectives auroc and logp_drop@0.01 (no
separation, so a stage is cheap). Searched by (a) the grid, every trial to its end; (b) random search with
``scheduler.kind: pareto_halving``; (c) Optuna's multi-objective TPE with the same scheduler. Each run has its
own storage (no stage is shared between them) and the same Ray instance. Reported: training steps executed
(counted by the trials, as ``compute_train_steps``) and trial-seconds until the hypervolume of the stages
seen so far first reaches 95 % of the grid's final hypervolume, with every run measured against the grid's
reference point, and each run's final hypervolume and totals.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from study.sweep.config import SweepConfig
from study.sweep.report.cost import STEPS, history, reference_point
from study.sweep.driver import run_sweep
from study.sweep.report.rows import stage_rows
from study.sweep.tracking import client_for

OBJECTIVES = {"auroc": "max", "logp_drop@0.01": "max"}
BASE = {
    "data": {"kind": "toy", "train_size": 200, "test_size": 50},
    "training": {"steps": 60, "batch_size": 4, "crop": 1024, "log_every": 10_000},
    "schedule": {"finetune_steps": 30},
    "evaluation": {"clips": 16, "crop": 1024, "noise_levels": [0.01]},
    "separation": {"enabled": False},
}
VARIANTS = [{"prior": {"name": name, "preset": "tiny", "hparams": hparams}}  # two architectures × two sizes
            for name in ("flowavenet", "wavenet") for hparams in ({}, {"width": 16})]
SCHEDULES = ["scratch", "from_clean", "chained"]
SAMPLES = 12  # trials drawn by random and by TPE (the grid has 4 × 3 × 3 = 36)
FRACTION = 0.95


def sweep_for(folder: Path, how: str) -> SweepConfig:
    if how == "grid":
        space = {"variant": {"grid": VARIANTS}, "schedule.sigma": {"grid": [0.01, 0.077, 0.359]},
                 "schedule.kind": {"grid": SCHEDULES}}
        search, scheduler = {"kind": "grid"}, {"kind": "fifo"}
    else:
        space = {"variant": {"choice": VARIANTS}, "schedule.sigma": {"uniform": [0.01, 0.359]},
                 "schedule.kind": {"choice": SCHEDULES}}
        search = {"kind": "random", "num_samples": SAMPLES, "seed": 0} if how == "random" else \
            {"kind": "optuna", "sampler": "tpe", "num_samples": SAMPLES, "seed": 0}
        scheduler = {"kind": "pareto_halving", "grace_period": 1, "reduction_factor": 2}
    return SweepConfig.model_validate({
        "name": f"search_{how}", "base": BASE, "space": space, "search": {**search, "objectives": OBJECTIVES},
        "scheduler": scheduler, "resources": {"cpu": 1}, "max_concurrent": 2, "storage": str(folder / "ray"),
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"}})


def rows_of(summary):
    client = client_for(summary.tracking_uri)
    return stage_rows(client, summary.experiment_id, summary.parent_run_id, list(OBJECTIVES))


def reached(curve, target: float, column: str) -> float | None:
    """The cumulative ``column`` at the first point whose hypervolume reaches ``target``; None if never."""
    hit = curve[curve["hypervolume"] >= target]
    return float(hit[column].iloc[0]) if len(hit) else None


def plot_curves(path: Path, curves: dict, target: float) -> None:
    """Hypervolume of the stages seen so far against training steps executed, one line per search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for how, curve in curves.items():
        ax.step(curve[STEPS], curve["hypervolume"], where="post", label=how)
    ax.axhline(target, color="grey", ls=":", label=f"{FRACTION:.0%} of the grid's final hypervolume")
    ax.set_xlabel("training steps executed (all trials, cumulative)")
    ax.set_ylabel("hypervolume (auroc, logp_drop@0.01)")
    ax.set_title("Frontier found against compute: grid to the end vs pareto_halving")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench_frontier_search(plot: Path | None = None) -> list[dict]:
    """The three searches, side by side; ``plot``: where to draw hypervolume against compute."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for how in ("grid", "random", "tpe"):
                folder = Path(tmp) / how
                sweep = sweep_for(folder, how)
                t0 = time.perf_counter()
                summary = run_sweep(sweep, log=lambda line: None)
                runs[how] = (summary, rows_of(summary), time.perf_counter() - t0)
    finally:
        ray.shutdown()
    grid_rows = runs["grid"][1]
    complete = grid_rows[list(OBJECTIVES)].notna().all(axis=1)
    sign = np.array([-1.0 if d == "max" else 1.0 for d in OBJECTIVES.values()])
    reference = dict(zip(OBJECTIVES, reference_point(grid_rows[complete], OBJECTIVES, None) * sign))
    curves = {how: history(rows, OBJECTIVES, reference) for how, (_, rows, _) in runs.items()}
    target = FRACTION * float(curves["grid"]["hypervolume"].iloc[-1])
    if plot is not None:
        plot_curves(plot, curves, target)
    result = []
    for how, (summary, rows, wall) in runs.items():
        curve = curves[how]
        steps = reached(curve, target, STEPS)
        result.append({"search": how, "trials": summary.finished, "stopped_early": summary.stopped_early,
                       "training_steps": int(curve[STEPS].iloc[-1]),
                       "steps_to_95pct_of_grid_hv": steps,
                       "trial_seconds_to_95pct": None if steps is None else
                       round(reached(curve, target, "compute_wall_seconds"), 1),
                       "final_hypervolume": round(float(curve["hypervolume"].iloc[-1]), 5),
                       "sweep_wall_s": round(wall, 1)})
    grid_steps = result[0]["steps_to_95pct_of_grid_hv"]
    for row in result:
        row["steps_vs_grid"] = (None if row["steps_to_95pct_of_grid_hv"] is None or not grid_steps
                                else round(row["steps_to_95pct_of_grid_hv"] / grid_steps, 3))
    return result


if __name__ == "__main__":
    from .common import table

    print(table(bench_frontier_search()))
