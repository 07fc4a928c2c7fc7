"""Shared pieces of the sweep tests: one Ray instance per session and a tiny sweep file."""
import os

import pytest
import yaml

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TINY_BASE = {
    "data": {"train_size": 100, "test_size": 50},
    "prior": {"name": "wavenet", "preset": "tiny"},
    "training": {"steps": 20, "batch_size": 4, "crop": 256, "log_every": 1000},
    "schedule": {"kind": "from_clean", "finetune_steps": 10},
    "evaluation": {"clips": 8, "crop": 256, "noise_levels": [0.01]},
    # a short listening excerpt (6 crops): the artifact is checked, at a fraction of the 2 s default's cost
    "separation": {"mixtures": 1, "length": 256, "steps_per_level": 5, "audio_examples": 1, "listen_seconds": 0.1},
}


# Trials slow enough to be stopped mid-stage: a short clean stage, then 400 fine-tuning steps checkpointed
# every 20 (each checkpoint uploaded to the stage store).
KILLABLE_BASE = {
    "data": {"train_size": 100, "test_size": 50},
    "prior": {"name": "wavenet", "preset": "tiny"},
    "training": {"steps": 150, "batch_size": 8, "crop": 1024, "log_every": 1000, "checkpoint_every": 20},
    "schedule": {"kind": "from_clean", "finetune_steps": 400},
    "evaluation": {"clips": 8, "crop": 1024, "noise_levels": [0.01]},
    "separation": {"mixtures": 1, "length": 256, "steps_per_level": 5, "audio_examples": 1, "listen_seconds": 0},
}


def write_sweep(folder, **overrides) -> str:
    tree = {
        "name": "tiny",
        "experiment": "tiny-study",
        "base": TINY_BASE,
        "space": {"schedule.sigma": {"grid": [0.0, 0.077]}},
        "resources": {"cpu": 1},
        "max_concurrent": 2,
        "storage": str(folder / "ray"),
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"},
    }
    tree.update(overrides)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return str(path)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
