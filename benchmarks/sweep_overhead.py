"""What the sweep machinery costs: the same trials through Ray Tune + MLflow versus a plain loop.

Overhead per trial = (sweep wall time with one trial at a time − plain-loop wall time) / trials, with Ray
already started (its start-up is reported apart). Concurrency = wall time with one trial at a time divided
by wall time with two at a time (one CPU and one torch thread each).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from study.config.schema import TrialConfig
from study.sweep.config import SweepConfig, trial_tree
from study.sweep.driver import run_sweep
from study.trial.run import run_trial

TRIALS = {
    # a trial that does almost nothing: measures the fixed cost of a trial in each system
    "trivial": {"prior": {"name": "wavenet", "preset": "tiny"}, "data": {"train_size": 50, "test_size": 20},
                "training": {"steps": 1, "batch_size": 2, "crop": 256},
                "evaluation": {"clips": 4, "crop": 256, "noise_levels": [0.01]}, "separation": {"enabled": False}},
    # a short real trial: training, evaluation and separation
    "short": {"prior": {"name": "wavenet", "preset": "small"}, "data": {"train_size": 500, "test_size": 100},
              "training": {"steps": 60, "batch_size": 4, "crop": 1024, "log_every": 1000},
              "schedule": {"kind": "from_clean", "sigma": 0.077, "finetune_steps": 30},
              "evaluation": {"clips": 16, "crop": 1024, "noise_levels": [0.01]},
              "separation": {"mixtures": 2, "length": 1024, "steps_per_level": 10}},
}


def _sweep(base: dict, trials: int, concurrent: int, folder: Path) -> float:
    sweep = SweepConfig(name=f"bench{concurrent}", base=base, space={"training.seed": {"grid": list(range(trials))}},
                        resources={"cpu": 1}, max_concurrent=concurrent, storage=str(folder / "ray"),
                        mlflow={"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"})
    t0 = time.perf_counter()
    summary = run_sweep(sweep, log=lambda line: None)
    elapsed = time.perf_counter() - t0
    if summary.finished != trials:
        raise RuntimeError(f"benchmark sweep finished {summary.finished} of {trials} trials")
    return elapsed


def bench_sweep(kind: str, trials: int = 4) -> dict:
    import ray

    base = TRIALS[kind]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        for seed in range(trials):
            cfg = TrialConfig.model_validate(trial_tree(base, {"training.seed": seed, "threads": 1, "device": "cpu"}))
            run_trial(cfg, folder / "loop" / str(seed), log=lambda line: None)
        loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        try:
            one = _sweep(base, trials, 1, folder / "one")
            two = _sweep(base, trials, 2, folder / "two")
        finally:
            ray.shutdown()
    per_trial = (one - loop) / trials
    return {"trials": kind, "count": trials, "plain_loop_s": round(loop, 2), "sweep_one_at_a_time_s": round(one, 2),
            "sweep_two_at_a_time_s": round(two, 2), "ray_start_s": round(ray_start, 2),
            "overhead_per_trial_s": round(per_trial, 2),
            "overhead_for_2_min_trial_pct": round(100 * per_trial / 120, 1),
            "concurrency_speedup": round(one / two, 2)}
