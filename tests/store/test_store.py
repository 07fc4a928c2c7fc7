"""The stage store and leases: atomic writes, completion markers, damaged files, expiry, and a trial killed
with SIGKILL mid-stage that resumes to exactly the result of an uninterrupted one."""
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from study.store.leases import FileLeases, LeaseTable
from study.trial.stages import plan_stages, stage_keys
from study.store.stage_store import StageStore, StoreError, atomic_write

from tests.trial.test_trial import TIMING, tiny


def test_atomic_write_and_completion_marker(tmp_path):
    store = StageStore(tmp_path / "stages")
    assert not store.is_complete("abc") and store.read_json("abc/x.json") is None
    store.write_json("abc/x.json", {"a": 1})
    store.write_json("abc/x.json", {"a": 2})  # replaced whole
    assert store.read_json("abc/x.json") == {"a": 2}
    assert not store.is_complete("abc")
    store.mark_complete("abc")
    assert store.is_complete("abc") and store.list("abc") == ["COMPLETE", "x.json"]
    assert not list((tmp_path / "stages").rglob("*.tmp-*"))  # no temporaries left behind


def test_damaged_files_name_themselves(tmp_path):
    store = StageStore(tmp_path)
    atomic_write(store.fs, store.path("k/training.json"), b"{not json")
    with pytest.raises(StoreError, match=r"k/training.json: not valid JSON"):
        store.read_json("k/training.json")
    atomic_write(store.fs, store.path("k/prior.pt"), b"garbage")
    with pytest.raises(StoreError, match=r"k/prior.pt: unreadable checkpoint"):
        store.read_torch("k/prior.pt")


@pytest.mark.parametrize("kind", ["table", "files"])
def test_leases_are_exclusive_and_expire(tmp_path, kind):
    table = LeaseTable(seconds=0.2) if kind == "table" else FileLeases(tmp_path / "leases", seconds=0.2)
    assert table.claim("k", "a") == (True, "a")
    assert table.claim("k", "b") == (False, "a")
    assert table.renew("k", "a") and not table.renew("k", "b")
    time.sleep(0.3)  # a's heartbeat stopped: the lease expires and b takes the stage over
    assert table.claim("k", "b") == (True, "b")
    table.release("k", "a")  # a stale holder cannot release b's lease
    assert table.claim("k", "a") == (False, "b")
    table.release("k", "b")
    assert table.claim("k", "a") == (True, "a")
    assert table.claim("key/eval/sub", "a") == (True, "a") and table.claim("key/eval/sub", "b") == (False, "a")


def test_stage_keys_share_what_determines_the_weights():
    clean = stage_keys(tiny(schedule={"kind": "from_clean", "sigma": 0.0}), plan_stages(tiny(schedule={"sigma": 0.0})))
    tuned = tiny(schedule={"kind": "from_clean", "sigma": 0.077})
    scratch_clean = tiny(schedule={"kind": "scratch", "sigma": 0.0})
    assert stage_keys(tuned, plan_stages(tuned))[0] == clean[0]  # the same clean stage
    assert stage_keys(scratch_clean, plan_stages(scratch_clean)) == clean  # scratch σ=0 is the clean stage
    other_eval = tiny(evaluation={"clips": 8}, separation={"steps_per_level": 3},
                      training={"log_every": 7, "checkpoint_every": 3}).model_copy(update={"threads": 1, "name": "x"})
    assert stage_keys(other_eval, plan_stages(other_eval)) == stage_keys(tiny(), plan_stages(tiny()))
    preset_spelt_out = tiny(prior={"name": "wavenet", "preset": None,
                                   "hparams": {"stacks": 1, "layers": 4, "width": 8, "kernel_size": 2}})
    assert stage_keys(preset_spelt_out, plan_stages(preset_spelt_out)) == stage_keys(tiny(), plan_stages(tiny()))
    for changed in (tiny(training={"lr": 1e-3}), tiny(data={"seed": 1}), tiny(training={"seed": 1}),
                    tiny(training={"steps": 301})):
        assert stage_keys(changed, plan_stages(changed))[0] != clean[0]
    chained = tiny(schedule={"kind": "chained", "sigma": 0.077, "ladder": [0.01, 0.077]})
    from_clean_001 = tiny(schedule={"kind": "from_clean", "sigma": 0.01})
    assert stage_keys(chained, plan_stages(chained))[:2] == stage_keys(from_clean_001, plan_stages(from_clean_001))


def _trial_yaml(tmp_path, cfg) -> str:
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return str(path)


def test_sigkill_mid_stage_resumes_to_the_uninterrupted_result(tmp_path):
    """Kill the trial process with SIGKILL while it trains and writes (twice), then finish it: the store stays
    readable, no finished stage is trained again, and the result equals an uninterrupted run's."""
    cfg = tiny(training={"steps": 400, "checkpoint_every": 25}, schedule={"finetune_steps": 200},
               evaluation={"clips": 16}, separation={"enabled": False})
    path = _trial_yaml(tmp_path, cfg)
    command = [sys.executable, "-m", "study.trial", path]
    reference = subprocess.run([*command, "--out", str(tmp_path / "reference")], capture_output=True, text=True,
                               timeout=300)
    assert reference.returncode == 0, reference.stderr[-2000:]

    out = tmp_path / "killed"
    store = StageStore(out / "stages")
    keys = stage_keys(cfg, plan_stages(cfg))
    for wait_for in (f"{keys[0]}/train.pt", f"{keys[1]}/train.pt"):  # mid clean stage, then mid fine-tuning
        process = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while not store.exists(wait_for) and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    complete_before = {key for key in keys if store.is_complete(key)}
    assert keys[0] in complete_before  # the clean stage finished before the second kill
    attempts_before = {key: store.list(f"{key}/attempts") for key in keys}

    finished = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "stage 0: σ=0, 400 steps, from scratch: reused" in finished.stdout
    for key in complete_before:  # no finished stage was trained again
        assert store.list(f"{key}/attempts") == attempts_before[key]
    for key in set(keys) - complete_before:  # the interrupted stage continued from its last checkpoint
        new = [store.read_json(f"{key}/attempts/{a}") for a in store.list(f"{key}/attempts")
               if a not in attempts_before[key]]
        assert len(new) == 1 and new[0]["start_step"] > 0

    def strip(folder):
        metrics = yaml.safe_load((folder / "metrics.json").read_text())
        return {k: v for k, v in metrics.items()
                if not k.endswith(TIMING) and k != "stage_reused" and not k.startswith("compute_")}

    assert strip(out) == strip(tmp_path / "reference")
    # the last run executed only what was left: the fine-tuning steps after its last checkpoint
    executed = yaml.safe_load((out / "metrics.json").read_text())["compute_train_steps"]
    assert 0 < executed < 200
