"""Training length as an axis: a longer stage continues a shorter one exactly, every length is trained once,
and a damaged shorter stage is never continued from."""
import io
import json

import torch

from study.config.schema import TrialConfig
from study.trial.stage_training import STATE, announce, announced
from study.trial.stages import length_key, plan_stages, stage_keys, stage_lineages, training_cost
from study.store.stage_store import StageStore
from study.trial.run import run_trial


def lengthy(steps: int, horizon: int | None = 60) -> TrialConfig:
    return TrialConfig.model_validate({
        "data": {"train_size": 200, "test_size": 40},
        "prior": {"name": "wavenet", "preset": "tiny"},
        "training": {"steps": steps, "lr_horizon": horizon, "batch_size": 4, "crop": 512, "lr": 3e-3,
                     "log_every": 1000, "checkpoint_every": 7},
        "schedule": {"kind": "scratch", "sigma": 0.0},
        "evaluation": {"clips": 8, "crop": 512, "noise_levels": [0.01]},
        "separation": {"enabled": False},
        "threads": 2,
    })


def quiet(line):
    pass


def key_of(cfg: TrialConfig) -> str:
    return stage_keys(cfg, plan_stages(cfg))[0]


def weights(store: StageStore, cfg: TrialConfig) -> dict:
    return store.read_torch(f"{key_of(cfg)}/prior.pt")["state_dict"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lengths_of_one_lineage_share_a_lineage():
    # (keys without lr_horizon stay as they were: tests/trial/test_stage_keys.py pins them)
    short, long = lengthy(30), lengthy(60)
    lineage = lambda cfg: stage_lineages(cfg, plan_stages(cfg), stage_keys(cfg, plan_stages(cfg)))[0]
    assert key_of(short) != key_of(long) and lineage(short) == lineage(long)
    assert lineage(lengthy(30, horizon=90)) != lineage(short)  # another learning-rate curve: another lineage
    assert stage_lineages(lengthy(30, None), plan_stages(lengthy(30, None)), [key_of(lengthy(30, None))]) == [None]
    assert length_key(long, plan_stages(long)[0], [], 30) == key_of(short)
    # a lineage costs its longest length once; without lr_horizon each length is its own training
    assert training_cost([lengthy(30), lengthy(60)])["all"] == (90, 60)
    assert training_cost([lengthy(30, None), lengthy(60, None)])["all"] == (90, 90)


def test_a_longer_stage_continues_the_shorter_one_exactly_and_trains_only_the_difference(tmp_path):
    direct = StageStore(tmp_path / "direct")
    run_trial(lengthy(60), tmp_path / "d60", log=quiet, store=direct)

    store = StageStore(tmp_path / "chain")
    first = run_trial(lengthy(30), tmp_path / "c30", log=quiet, store=store)
    lines = []
    second = run_trial(lengthy(60), tmp_path / "c60", log=lines.append, store=store)
    assert first["compute_train_steps"] == 30 and second["compute_train_steps"] == 30  # 60 steps in all
    assert any("continuing the 30-step stage" in line for line in lines)
    record = store.read_json(f"{key_of(lengthy(60))}/training.json")
    assert record["start_step"] == 30 and record["continued_from"] == key_of(lengthy(30))
    attempts = [store.read_json(f"{key_of(lengthy(60))}/{name}") for name in store.list(key_of(lengthy(60)))
                if name.startswith("attempts/")]
    assert [a["start_step"] for a in attempts] == [30]
    # exact: the continued 60-step prior is the one trained in one go
    assert same(weights(store, lengthy(60)), weights(direct, lengthy(60)))
    assert first["stage_reused"] == 0 and second["stage_reused"] == 0
    # the continued trial's metrics equal the direct one's
    direct_metrics = json.loads((tmp_path / "d60" / "metrics.json").read_text())
    assert second["auroc"] == direct_metrics["auroc"]


def test_announced_lengths_are_sealed_on_the_way_and_then_reused(tmp_path):
    store = StageStore(tmp_path / "stages")
    cfg = lengthy(60)
    lineage = stage_lineages(cfg, plan_stages(cfg), [key_of(cfg)])[0]
    for steps in (30, 60):  # what a sweep with training.steps: [30, 60] announces before its trials start
        announce(store, lineage, steps)
    assert announced(store, lineage) == [30, 60]
    lines = []
    longest = run_trial(cfg, tmp_path / "t60", log=lines.append, store=store)
    assert longest["compute_train_steps"] == 60
    assert any("sealed the 30-step stage" in line for line in lines)
    assert store.is_complete(key_of(lengthy(30))) and store.damage(key_of(lengthy(30))) is None
    shorter = run_trial(lengthy(30), tmp_path / "t30", log=quiet, store=store)
    assert shorter["stage_reused"] == 1 and shorter["compute_train_steps"] == 0
    # the sealed 30-step stage is what 30 steps trained on their own give
    alone = StageStore(tmp_path / "alone")
    run_trial(lengthy(30), tmp_path / "a30", log=quiet, store=alone)
    assert same(weights(store, lengthy(30)), weights(alone, lengthy(30)))


def test_a_damaged_shorter_stage_is_set_aside_not_continued_from(tmp_path):
    store = StageStore(tmp_path / "stages")
    run_trial(lengthy(30), tmp_path / "t30", log=quiet, store=store)
    before = weights(store, lengthy(30))
    state = f"{key_of(lengthy(30))}/{STATE}"
    data = bytearray(store.read_bytes(state))
    data[-20] ^= 0xFF
    store.write_bytes(state, bytes(data))
    lines = []
    result = run_trial(lengthy(45), tmp_path / "t45", log=lines.append, store=store)
    assert any("content differs" in line and "set aside" in line for line in lines)
    assert not any("continuing" in line for line in lines)
    assert result["compute_train_steps"] == 45  # trained from the start: 30 again, sealed, then 15 more
    alone = StageStore(tmp_path / "alone")
    run_trial(lengthy(45), tmp_path / "a45", log=quiet, store=alone)
    assert same(weights(store, lengthy(45)), weights(alone, lengthy(45)))
    # trained again and sealed again, the 30-step stage is what it was before the damage
    assert store.damage(key_of(lengthy(30))) is None and same(weights(store, lengthy(30)), before)


def test_a_stage_sealed_for_other_settings_is_not_continued_from(tmp_path):
    """A state whose recorded training differs (here: written by hand for another learning rate) is ignored."""
    store = StageStore(tmp_path / "stages")
    run_trial(lengthy(30), tmp_path / "t30", log=quiet, store=store)
    key = key_of(lengthy(30))
    record = torch.load(store.path(f"{key}/{STATE}"), weights_only=True)
    record["training"]["lr"] = 1.0
    buffer = io.BytesIO()
    torch.save(record, buffer)
    store.write_bytes(f"{key}/{STATE}", buffer.getvalue())
    store.mark_complete(key)  # re-sealed: its digests match, only its content is stale
    lines = []
    result = run_trial(lengthy(45), tmp_path / "t45", log=lines.append, store=store)
    assert any("no final state for 30 steps of these settings" in line for line in lines)
    assert result["compute_train_steps"] == 45
