"""What the stage store saves: a shrunk noise_frontier run with stage sharing on and off, side by side.

Both runs are the same sweep (both architectures at tiny size, all six σ*, all three schedules, a few hundred
steps) on the same Ray instance; only ``share_stages`` differs. Training steps executed are counted from the
stage store's training records, so they are what actually ran, not what was planned.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from study.config.reading import read_yaml
from study.store.stage_store import StageStore
from study.sweep.config import SweepConfig
from study.sweep.driver import run_sweep

SHRUNK = {
    "data": {"kind": "toy", "train_size": 200, "test_size": 50},
    "training": {"steps": 200, "batch_size": 4, "crop": 1024, "log_every": 10_000, "checkpoint_every": 100},
    "schedule": {"finetune_steps": 60},
    "evaluation": {"clips": 8, "crop": 1024, "noise_levels": [0.01]},
    "separation": {"mixtures": 1, "length": 1024, "steps_per_level": 5, "audio_examples": 0},
}


def shrunk_noise_frontier(folder: Path, share: bool) -> SweepConfig:
    tree = read_yaml(Path(__file__).resolve().parent.parent / "sweeps" / "noise_frontier.yaml")
    base = tree["base"]
    for section, values in SHRUNK.items():
        base[section] = {**base.get(section, {}), **values}
    tree["space"]["variant"] = {"grid": [{"prior": {"name": "flowavenet", "preset": "tiny"}},
                                         {"prior": {"name": "wavenet", "preset": "tiny"}}]}
    tree.update(name=f"sharing_{'on' if share else 'off'}", share_stages=share, resources={"cpu": 1},
                max_concurrent=2, storage=str(folder / "ray"), failure={"max_failures": 0},
                mlflow={"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"})
    return SweepConfig.model_validate(tree)


def steps_executed(store: StageStore) -> int:
    """Σ over every training record in the store (private stores included) of the steps it ran."""
    total = 0
    for name in store.list(""):
        if name.endswith("/training.json"):
            record = store.read_json(name)
            total += record["steps"] - record["start_step"]
    return total


def waiting_seconds(summary) -> float:
    """Σ over trials and stages of the time a trial held its slot waiting for another trial's stage."""
    from study.sweep.tracking import child_runs, client_for

    client = client_for(summary.tracking_uri)
    return sum(m.value for run in child_runs(client, summary.experiment_id, summary.parent_run_id)
               for m in client.get_metric_history(run.info.run_id, "stage_wait_seconds"))


def bench_sharing() -> list[dict]:
    import ray

    rows = []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for share in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                sweep = shrunk_noise_frontier(Path(tmp), share)
                t0 = time.perf_counter()
                summary = run_sweep(sweep, log=lambda line: None)
                wall = time.perf_counter() - t0
                if summary.finished != sweep.num_trials():
                    raise RuntimeError(f"{sweep.name}: {summary.finished} of {sweep.num_trials()} trials finished")
                rows.append({"sharing": "on" if share else "off", "trials": summary.finished,
                             "training_steps_executed": steps_executed(StageStore(Path(tmp) / "ray" / "stages")),
                             "wall_s": round(wall, 1), "waiting_for_stages_s": round(waiting_seconds(summary), 1)})
    finally:
        ray.shutdown()
    off, on = rows
    rows.append({"sharing": "off / on", "training_steps_executed":
                 round(off["training_steps_executed"] / on["training_steps_executed"], 2),
                 "wall_s": round(off["wall_s"] / on["wall_s"], 2)})
    return rows
