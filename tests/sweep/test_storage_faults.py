"""Storage at its edges: a changed sweep is refused on resume, storage that cannot take the sweep is refused
before Ray starts, and nothing is left RUNNING or half written."""
import os
import subprocess

import pytest

from study.store.stage_store import StageStore
from study.sweep.cli import main

from .conftest import TINY_BASE, write_sweep
from .test_resume import stage_folders
from .test_sweep_run import runs_of


def test_a_sweep_edited_since_it_started_is_refused_and_restart_reuses_its_stages(tmp_path, ray_session, capsys):
    path = write_sweep(tmp_path, space={"schedule.sigma": {"grid": [0.077]}})
    assert main([path]) == 0
    store = StageStore(tmp_path / "ray" / "stages")
    trained = stage_folders(store)
    client, parents, children = runs_of(tmp_path)
    capsys.readouterr()

    # the YAML edited: one more grid value and a separation setting
    write_sweep(tmp_path, space={"schedule.sigma": {"grid": [0.077, 0.129]}},
                base={**TINY_BASE, "separation": {**TINY_BASE["separation"], "steps_per_level": 6}})
    assert main([path]) == 2
    err = capsys.readouterr().err
    assert "changed since its saved state" in err and "base.separation.steps_per_level" in err, err
    assert "space.schedule.sigma" in err and "--restart" in err
    _, parents_after, children_after = runs_of(tmp_path)
    assert len(parents_after) == 1 and len(children_after) == len(children)  # nothing ran, nothing logged

    assert main([path, "--restart"]) == 0
    out = capsys.readouterr().out
    client, parents_after, children_after = runs_of(tmp_path)
    assert len(parents_after) == 1 and parents_after[0].info.run_id != parents[0].info.run_id  # one per name: the new
    earlier = client.get_run(parents[0].info.run_id)  # the earlier one kept, renamed, pointing at the new one
    assert earlier.data.tags["study.role"] == "replaced" and earlier.info.run_name == "tiny (replaced)"
    assert earlier.data.tags["study.replaced_by"] == parents_after[0].info.run_id
    assert f"{parents[0].info.run_id} is kept as 'tiny (replaced)'" in out
    assert main([path]) == 0 and "has finished already" in capsys.readouterr().out  # the plain command, afterwards
    again = stage_folders(store)
    assert all(len(again[key]) == 1 for key in trained)  # the two stages trained before: not trained again
    assert len(again) == len(trained) + 1  # only σ = 0.129's stage is new


def tmpfs(tmp_path, size: str):
    """A tmpfs of ``size`` mounted for one test; skipped where mounting is not allowed."""
    folder = tmp_path / f"tmpfs-{size}"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_mount(tmp_path):
    """A 2 MB tmpfs: a full disk in miniature."""
    yield from tmpfs(tmp_path, "2m")


@pytest.mark.parametrize("problem", ["full", "read-only"])
def test_storage_that_cannot_take_the_sweep_is_refused_before_anything_starts(tmp_path, small_mount, capsys, problem):
    if problem == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
        expected = "storage: cannot write to"
    else:
        expected = "MB free under"
    path = write_sweep(tmp_path, storage=str(small_mount / "ray"))
    os.chdir(tmp_path)
    assert main([path]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
    assert not (tmp_path / "mlflow.db").exists() and not (small_mount / "ray").exists()


@pytest.fixture
def room_for_a_sweep(tmp_path):
    """A 320 MB tmpfs: enough for the storage check (256 MB free), small enough to fill."""
    yield from tmpfs(tmp_path, "320m")


def test_a_disk_filling_up_mid_stage_leaves_nothing_running_and_resumes_once_freed(tmp_path, room_for_a_sweep):
    import time

    from .conftest import KILLABLE_BASE
    from .test_resume import run_driver

    storage = room_for_a_sweep / "ray"
    base = {**KILLABLE_BASE, "schedule": {**KILLABLE_BASE["schedule"], "finetune_steps": 60}}
    path = write_sweep(tmp_path, base=base, storage=str(storage), space={"schedule.sigma": {"grid": [0.077]}},
                       max_concurrent=1)
    store = StageStore(storage / "stages")
    driver = run_driver(path, tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None and not any(
            name.endswith("train.pt") for name in store.list("")):
        time.sleep(0.2)
    filler = room_for_a_sweep / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=400"], capture_output=True)  # fills it
    output = driver.communicate(timeout=600)[0]
    assert driver.returncode not in (0, None), output[-3000:]
    client, parents, children = runs_of(tmp_path)
    assert [run.info.status for run in parents + children if run.info.status == "RUNNING"] == [], output[-3000:]
    assert not [name for name in store.list("") if ".tmp-" in name]  # no half-written file left behind

    filler.unlink()
    again = run_driver(path, tmp_path)
    output = again.communicate(timeout=600)[0]
    assert again.returncode == 0, output[-3000:]
    client, parents, children = runs_of(tmp_path)
    assert [run.info.status for run in children].count("FINISHED") == 1
