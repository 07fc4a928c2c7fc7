"""A stage store that never lies: keys follow the data's content, and damaged stages are set aside and rebuilt."""
import numpy as np
import soundfile as sf

from study.config.schema import TrialConfig
from study.trial.stages import evaluation_key, plan_stages, stage_keys
from study.store.stage_store import INVALID, StageStore
from study.trial.run import run_trial
from tests.data.test_stems import SOURCES, write_track


def stems_trial(root) -> TrialConfig:
    return TrialConfig.model_validate({
        "data": {"kind": "stems", "root": str(root), "sources": list(SOURCES), "sample_rate": 14_700,
                 "cache_dir": str(root.parent / "cache"), "silence_db": None},
        "prior": {"name": "wavenet", "preset": "tiny"},
        "training": {"steps": 20, "batch_size": 4, "crop": 1024, "log_every": 1000},
        "schedule": {"kind": "scratch", "sigma": 0.0},
        "evaluation": {"clips": 4, "crop": 1024, "noise_levels": [0.01]},
        "separation": {"enabled": False},
        "threads": 2,
    })


def rewrite(stem):
    """New audio of the same format and length (so the same size) under the same path."""
    samples, rate = sf.read(stem, dtype="float32")
    sf.write(stem, np.roll(samples, 777, axis=0) * 0.5, rate, subtype="FLOAT")


def run(cfg, tmp_path, store, name):
    lines, reports = [], []
    run_trial(cfg, tmp_path / name, report=lambda m, d: reports.append(m), log=lines.append, store=store)
    return reports[-1], lines


def test_new_audio_under_the_same_path_is_new_data(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "test"):
        write_track(root / split / "track0")
    cfg, store = stems_trial(root), StageStore(tmp_path / "stages")
    first, _ = run(cfg, tmp_path, store, "a")
    again, _ = run(cfg, tmp_path, store, "b")
    assert (first["stage_reused"], again["stage_reused"]) == (0.0, 1.0) and again["stage_key"] == first["stage_key"]

    stage_before = stage_keys(cfg, plan_stages(cfg))
    evaluation_before = evaluation_key(cfg, plan_stages(cfg)[0], stage_before[0])
    rewrite(root / "test" / "track0" / "bass.wav")  # test audio only: same weights, a new evaluation
    assert stage_keys(cfg, plan_stages(cfg)) == stage_before
    assert evaluation_key(cfg, plan_stages(cfg)[0], stage_before[0]) != evaluation_before

    rewrite(root / "train" / "track0" / "bass.wav")  # training audio: a new stage, trained, not reused
    changed, _ = run(cfg, tmp_path, store, "c")
    assert changed["stage_key"] != first["stage_key"] and changed["stage_reused"] == 0.0


def test_a_damaged_stage_is_set_aside_and_trained_again(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "test"):
        write_track(root / split / "track0")
    cfg, store = stems_trial(root), StageStore(tmp_path / "stages")
    first, _ = run(cfg, tmp_path, store, "a")
    key = first["stage_key"]
    weights = tmp_path / "stages" / key / "prior.pt"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0x10  # one bit in the middle of a tensor: the file still loads
    weights.write_bytes(bytes(raw))

    second, lines = run(cfg, tmp_path, store, "b")
    assert second["stage_key"] == key and second["stage_reused"] == 0.0  # trained again, not reused
    warnings = [line for line in lines if line.startswith("warning:") and "prior.pt" in line]
    assert len(warnings) == 1 and "set aside" in warnings[0], lines
    kept = [name for name in store.list(INVALID) if name.endswith("/prior.pt")]
    assert len(kept) == 1 and (tmp_path / "stages" / INVALID / kept[0]).read_bytes() == bytes(raw)  # kept as found
    assert store.damage(key) is None and len(store.list(f"{key}/attempts")) == 1
    third, _ = run(cfg, tmp_path, store, "c")
    assert third["stage_reused"] == 1.0  # the rebuilt stage is trusted again

    # a truncated file is caught the same way, and never left COMPLETE
    weights.write_bytes(weights.read_bytes()[:100])
    fourth, lines = run(cfg, tmp_path, store, "d")
    assert fourth["stage_reused"] == 0.0 and any("set aside" in line for line in lines)
    assert not list((tmp_path / "stages").rglob("*.tmp-*"))
