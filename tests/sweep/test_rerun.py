"""Running a sweep again, as users do: every shipped sweep's settings survive being saved and checked, and the
quickstart itself finishes and its re-run (plain and --resume) changes nothing."""
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.config.reading import ConfigError
from study.sweep.cli import load_sweep, main
from study.sweep.driver import changed_settings, check_unchanged, save_fingerprint

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "sweeps").glob("*.yaml"))
# the quickstart as shipped, made small enough for a test by --set alone (its grid of mappings untouched)
SHORT = ["--set", "base.training.steps=10", "--set", "base.schedule.finetune_steps=5",
         "--set", "base.data.train_size=50", "--set", "base.data.test_size=20",
         "--set", "base.training.crop=256", "--set", "base.evaluation={clips: 4, crop: 256}",
         "--set", "base.separation={mixtures: 2, length: 256, steps_per_level: 3, listen_seconds: 0}"]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_each_shipped_sweep_is_unchanged_after_saving_its_settings(path, tmp_path):
    saved = tmp_path / "state"
    save_fingerprint(load_sweep(path, []), str(saved))
    check_unchanged(load_sweep(path, []), str(saved))  # read again from the YAML: the same sweep


def test_settings_compare_as_data_in_any_order_and_nesting():
    before = {"space": {"prior": {"grid": [{"name": "wavenet", "hparams": {"layers": 7, "width": 16}}]}}, "x": 1}
    reordered = {"x": 1.0, "space": {"prior": {"grid": [{"hparams": {"width": 16, "layers": 7}, "name": "wavenet"}]}}}
    assert changed_settings(before, reordered) == []
    edited = {"x": 1, "space": {"prior": {"grid": [{"name": "wavenet", "hparams": {"layers": 7, "width": 32}}]}}}
    assert changed_settings(before, edited) == ["space.prior.grid"]
    assert changed_settings({"a": {"b": 1}}, {"a": {"b": True}}) == ["a.b"]  # true is not 1
    assert changed_settings({"a": [1, 2]}, {"a": [1, 2, 3]}) == ["a"]


def test_an_edited_grid_of_mappings_is_still_refused(tmp_path):
    quickstart = REPO / "sweeps" / "quickstart.yaml"
    save_fingerprint(load_sweep(quickstart, []), str(tmp_path))
    wider = load_sweep(quickstart, ["space.prior.grid=[{name: wavenet, preset: null, hparams: {layers: 8}}]"])
    with pytest.raises(ConfigError, match=r"changed since its saved state \(space.prior.grid\)"):
        check_unchanged(wider, str(tmp_path))


def test_the_quickstart_runs_then_reruns_changing_nothing(tmp_path, ray_session, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the README's command, run in a folder of its own
    command = [str(REPO / "sweeps" / "quickstart.yaml"), *SHORT]
    assert main(command) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart").experiment_id

    def record():
        runs = client.search_runs([experiment])
        return sorted((run.info.run_id, run.info.run_name, run.info.status, run.info.end_time,
                       sorted(run.data.metrics.items()), sorted(run.data.tags.items()),
                       sorted(a.path for a in client.list_artifacts(run.info.run_id))) for run in runs)

    before = record()
    assert len(before) == 7  # the sweep run and its six trials
    capsys.readouterr()
    for again in ([], ["--resume"]):
        assert main(command + again) == 0
        assert "has finished already: nothing to do" in capsys.readouterr().out
        assert record() == before

    # --restart keeping one sweep run per name: tests/sweep/test_storage_faults.py, on a smaller sweep
