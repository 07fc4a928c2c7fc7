"""Malformed sweep files exit with status 2, name the field path and create nothing; dry runs count right."""
import os

import pytest
import yaml

from study.sweep.cli import main
from study.sweep.config import SweepConfig

from .conftest import TINY_BASE, write_sweep


def run_cli(tmp_path, capsys, *args):
    os.chdir(tmp_path)
    code = main([*args])
    out = capsys.readouterr()
    return code, out.out, out.err


BAD = [
    ({"space": {"schedule.sigma": {"gird": [0.0]}}}, "space.schedule.sigma.gird"),
    ({"space": {"schedule.sigma": {"grid": [0.0], "choice": [1]}}}, "space.schedule.sigma"),
    ({"space": {"training.lr": {"loguniform": [0.0, 1.0]}}}, "loguniform needs a positive low end"),
    ({"space": {"training.lr": {"uniform": [1.0, 0.5]}}}, "low < high"),
    ({"space": {"schedule.sigma": {"grid": [-1.0]}}}, "base.schedule.sigma"),
    ({"space": {"schedule.kind": {"grid": ["sometimes"]}}}, "base.schedule.kind"),
    ({"space": {"prior.name": {"grid": ["wavenet", "transformer"]}}}, "unknown prior 'transformer'"),
    ({"space": {"training.stepz": {"grid": [1]}}}, "base.training.stepz"),
    ({"search": {"kind": "bayes"}}, "search.kind"),
    ({"search": {"kind": "optuna"}}, "search.kind=optuna cannot search grid dimensions"),
    ({"search": {"kind": "optuna", "sampler": "cmaes"}, "space": {}}, "search.sampler"),
    ({"search": {"objectives": {"auroc": "up"}}}, "search.objectives.auroc"),
    ({"search": {"objectives": {"auroc": "max", "si_sdr": "max"}}, "scheduler": {"kind": "asha"}},
     "asha cannot be combined with several search.objectives"),
    ({"resources": {"cpu": 0}}, "resources.cpu"),
    ({"resources": {"gpu": "one"}}, "resources.gpu"),
    ({"max_concurrent": 0}, "max_concurrent"),
    ({"failure": {"max_failure": 1}}, "failure.max_failure"),
    ({"name": "has spaces"}, "name"),
    ({"unknown_section": 1}, "unknown_section"),
    ({"base": {"training": {"crop": 100}, "prior": {"name": "flowavenet", "preset": "small"}}},
     "training.crop=100 must be divisible by 16"),
]


@pytest.mark.parametrize("overrides,expected", BAD, ids=[e for _, e in BAD])
def test_malformed_sweep_exits_2_naming_the_field_and_creates_nothing(tmp_path, capsys, overrides, expected):
    path = write_sweep(tmp_path, **overrides)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli(tmp_path, capsys, path)
    assert code == 2, (out, err)
    assert expected in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no mlflow.db, no ray folder


@pytest.mark.parametrize("assignment,expected", [
    ("base.training.steps=many", "base.training.steps"),
    ("search.num_samples=0", "search.num_samples"),
    ("novalue", "expected the form key.path=value"),
    ("base.training.steps.inner=1", "base.training.steps"),
    ("base.trainig.steps=5", "base.trainig: Extra inputs are not permitted; did you mean 'training'?"),
    ("base.training.stpes=5", "did you mean 'steps'?"),
    ("max_concurent=1", "max_concurent: Extra inputs are not permitted; did you mean 'max_concurrent'?"),
    ("base.separation.levels=karras", "separation.levels: karras takes scores at any noise level"),
])
def test_bad_set_overrides_exit_2(tmp_path, capsys, assignment, expected):
    code, _, err = run_cli(tmp_path, capsys, write_sweep(tmp_path), "--set", assignment)
    assert code == 2 and expected in err, err


def test_missing_and_non_mapping_files(tmp_path, capsys):
    code, _, err = run_cli(tmp_path, capsys, str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in err
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    code, _, err = run_cli(tmp_path, capsys, str(tmp_path / "list.yaml"))
    assert code == 2 and "must be a mapping" in err
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    code, _, err = run_cli(tmp_path, capsys, str(tmp_path / "broken.yaml"))
    assert code == 2 and "not valid YAML" in err


def test_dry_run_counts_and_lists_the_grid(tmp_path, capsys):
    space = {"schedule.sigma": {"grid": [0.0, 0.01, 0.077]}, "schedule.kind": {"grid": ["scratch", "chained"]},
             "training.lr": {"loguniform": [1e-4, 1e-2]}}
    code, out, _ = run_cli(tmp_path, capsys, write_sweep(tmp_path, space=space, search={"num_samples": 2}),
                           "--dry-run")
    assert code == 0
    assert "12 trials" in out and "× 2 samples each" in out and "training.lr ~ loguniform" in out
    assert out.count("schedule.kind=") == 6
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray").exists()
    optuna = write_sweep(tmp_path, space={"schedule.sigma": {"uniform": [0.0, 0.4]}},
                         search={"kind": "optuna", "sampler": "nsga2", "num_samples": 7})
    code, out, _ = run_cli(tmp_path, capsys, optuna, "--dry-run")
    assert code == 0 and "7 trials" in out and "nsga2" in out
    missing = write_sweep(tmp_path, space={"data.kind": {"grid": ["toy", "stems"]}},
                          base={**TINY_BASE, "data": {**TINY_BASE["data"], "root": str(tmp_path / "no-stems")}})
    code, out, _ = run_cli(tmp_path, capsys, missing, "--dry-run")
    assert code == 0 and f"warning: data.root: {tmp_path / 'no-stems'}: dataset root does not exist" in out


def test_a_training_length_axis_is_planned_and_announced_as_one_lineage(tmp_path, capsys):
    """training.steps on a grid with lr_horizon: the dry run counts the lineage once, and the sweep announces
    every length to the stage store before any trial starts (study.trial.stage_training)."""
    from study.trial.stage_training import announced
    from study.sweep.cli import load_sweep
    from study.sweep.driver import announce_lengths, trial_context
    from study.trial.stages import plan_stages, stage_keys, stage_lineages
    from study.store.stage_store import StageStore

    base = {**TINY_BASE, "training": {**TINY_BASE["training"], "lr_horizon": 40},
            "schedule": {"kind": "scratch", "sigma": 0.0}}
    path = write_sweep(tmp_path, base=base, space={"training.steps": {"grid": [10, 20, 40]},
                                                   "separation.epsilon": {"grid": [1e-5, 2e-5]}})
    code, out, _ = run_cli(tmp_path, capsys, path, "--dry-run")
    assert code == 0 and "training steps: 140 planned, 40 distinct (3.5×)" in out
    sweep = load_sweep(path, [])
    context = trial_context(sweep, "sqlite:///unused.db", "0", "parent", str(tmp_path / "ray"))
    announce_lengths(sweep, context)
    from study.sweep.trainable import trial_config
    cfg = trial_config(sweep.grid_points()[0], context)
    lineage = stage_lineages(cfg, plan_stages(cfg), stage_keys(cfg, plan_stages(cfg)))[0]
    assert announced(StageStore(context.store_uri), lineage) == [10, 20, 40]


@pytest.mark.parametrize("name", ["quickstart", "noise_frontier", "optuna_frontier", "beyond_frontier",
                                  "chorales_frontier", "separation_frontier", "separation_samplers", "training_length"])
def test_shipped_sweeps_validate(name, capsys):
    from pathlib import Path

    from study.sweep.cli import load_sweep

    root = Path(__file__).resolve().parents[2]
    sweep = load_sweep(root / "sweeps" / f"{name}.yaml", [])
    assert isinstance(sweep, SweepConfig) and sweep.num_trials() >= 1
    if name == "noise_frontier":
        assert sweep.num_trials() >= 36


def test_cli_flags_override_yaml(tmp_path):
    from study.sweep.cli import load_sweep

    sweep = load_sweep(write_sweep(tmp_path), ["base.training.steps=7"], tracking_uri="http://127.0.0.1:5000",
                       storage="s3://bucket/path", max_concurrent=3)
    assert sweep.base["training"]["steps"] == 7 and sweep.mlflow.tracking_uri == "http://127.0.0.1:5000"
    assert sweep.storage == "s3://bucket/path" and sweep.max_concurrent == 3
    assert yaml.safe_load(open(write_sweep(tmp_path)))["max_concurrent"] == 2


@pytest.mark.parametrize("name", ["tiny", "separation_probe", "training_length_4000", "chorales_separation"])
def test_shipped_trials_validate(name):
    from pathlib import Path

    from study.config.schema import TrialConfig
    from study.config.reading import load_config

    path = Path(__file__).resolve().parents[2] / "sweeps" / "trials" / f"{name}.yaml"
    assert load_config(TrialConfig, path, []).name


def test_the_training_length_trial_reuses_the_sweeps_longest_stage(tmp_path):
    """sweeps/trials/training_length_4000.yaml names the same trained stage as training_length's 4 000-step
    trials on data seed 7, so benchmarks.chains on it reuses the sweep's store instead of training again."""
    from pathlib import Path

    from study.config.schema import TrialConfig
    from study.config.reading import load_config
    from study.trial.stages import plan_stages, stage_keys
    from study.sweep.cli import load_sweep
    from study.sweep.driver import trial_context
    from study.sweep.trainable import trial_config

    root = Path(__file__).resolve().parents[2]
    sweep = load_sweep(root / "sweeps" / "training_length.yaml", ["base.data.seed=7"])
    context = trial_context(sweep, "sqlite:///unused.db", "0", "parent", str(tmp_path / "ray"))
    longest = [trial_config(point, context) for point in sweep.grid_points()]
    longest = [cfg for cfg in longest if cfg.training.steps == 4000]
    trial = load_config(TrialConfig, root / "sweeps" / "trials" / "training_length_4000.yaml", [])
    assert longest and all(stage_keys(cfg, plan_stages(cfg)) == stage_keys(trial, plan_stages(trial))
                           for cfg in longest)


def test_a_dry_run_and_a_config_error_import_neither_torch_nor_ray(tmp_path):
    """Validation and --dry-run answer from the YAML alone (issue 28: a dry run took 10-22 s, 9 s of it
    importing torch and Ray); what they need of the priors, data and CPU is read without importing them."""
    import subprocess
    import sys
    from pathlib import Path

    sweep = write_sweep(tmp_path, space={"prior.name": {"grid": ["wavenet", "flowavenet", "scorenet"]}},
                        resources={"cpu": 512})
    probe = ("import sys\nfrom study.sweep.cli import main\ncode = main(sys.argv[1:])\n"
             "print('HEAVY', sorted({'torch', 'ray', 'mlflow', 'torchaudio', 'torchmetrics'} & set(sys.modules)))\n"
             "sys.exit(code)")
    root = Path(__file__).resolve().parents[2]
    answers = {}
    for args, code in [([sweep, "--dry-run"], 0), ([sweep, "--set", "base.trainig.steps=3"], 2)]:
        out = subprocess.run([sys.executable, "-c", probe, *args], cwd=root, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == code, out.stdout + out.stderr
        assert "HEAVY []" in out.stdout, out.stdout
        answers[code] = out.stdout + out.stderr
    assert "3 trials" in answers[0] and "precision " in answers[0]
    assert "warning: resources: one trial asks for 512 CPU and 0 GPU; this machine has" in answers[0]
    assert "did you mean 'training'?" in answers[2]


def test_trials_are_labelled_by_what_tells_them_apart():
    """Family, σ*, schedule and each other varied setting; a variant that names itself by its name alone."""
    from pathlib import Path

    from study.config.schema import TrialConfig
    from study.sweep.cli import load_sweep
    from study.sweep.config import trial_tree
    from study.sweep.labels import trial_label, varied_settings

    root = Path(__file__).resolve().parents[2]
    labels = {}
    for name in ("separation_frontier", "quickstart"):
        sweep = load_sweep(root / "sweeps" / f"{name}.yaml", [])
        labels[name] = [trial_label(TrialConfig.model_validate(trial_tree(sweep.base, point)), point,
                                    varied_settings(sweep)) for point in sweep.grid_points()]
    assert labels["separation_frontier"][:2] == ["score σ*3 scratch score-s3", "score σ*1 scratch score-s1"]
    assert labels["quickstart"][:2] == ["wn σ*0 ft stacks=1 layers=7", "wn σ*0.077 ft stacks=1 layers=7"]
    assert len(set(labels["separation_frontier"])) == len(labels["separation_frontier"])
