"""Storage at its edges: a changed sweep is refused on resume, storage that cannot take the sweep is refused
before Ray starts, and nothing is left RUNNING or half written."""
import os
import subprocess

import pytest

from study.store import StageStore
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
    _, parents_after, children_after = runs_of(tmp_path)
    assert len(parents_after) == 2  # a new sweep run describing what ran
    again = stage_folders(store)
    assert all(len(again[key]) == 1 for key in trained)  # the two stages trained before: not trained again
    assert len(again) == len(trained) + 1  # only σ = 0.129's stage is new


@pytest.fixture
def small_mount(tmp_path):
    """A 2 MB tmpfs (a full disk in miniature); skipped where mounting is not allowed."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


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
