"""Malformed sweep inputs, one class of mistake after another: each exits with status 2 and one bounded message
that names the field (or the file and line), and creates nothing. Also: validation is bounded in time and
memory, however large the space or the aliases make the document."""
import os
import resource
import subprocess
import sys
import time

import pytest
import yaml

from study.sweep.cli import main

from .conftest import TINY_BASE, write_sweep

MAX_ERROR_CHARS = 4000


def run_cli(tmp_path, capsys, *args):
    os.chdir(tmp_path)
    code = main([*args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_rejected(tmp_path, capsys, path, expected, *flags):
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli(tmp_path, capsys, str(path), *flags)
    assert code == 2, (out, err[-2000:])
    assert expected in err, err[-2000:]
    assert "Traceback" not in err and len(err) < MAX_ERROR_CHARS and "s3cret" not in err, err[:2000]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no mlflow.db, no ray folder


def base_with(**sections) -> dict:
    """TINY_BASE with some sections updated (one level deep)."""
    tree = yaml.safe_load(yaml.safe_dump(TINY_BASE))
    for section, values in sections.items():
        tree[section] = {**tree.get(section, {}), **values} if isinstance(values, dict) else values
    return tree


LAUGHS = "\n".join(["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                   + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)])

# --- the file itself: (raw YAML text, expected fragment) ------------------------------------------------------
RAW = {
    "duplicate top-level key": ("name: a\nname: b\n", "duplicate key 'name'"),
    "duplicate nested key": ("name: a\nbase:\n  training:\n    steps: 1\n    steps: 2\n", "duplicate key 'steps'"),
    "duplicate key in a flow mapping": ("name: a\nresources: {cpu: 1, cpu: 2}\n", "duplicate key 'cpu'"),
    "alias bomb at the top level": ("name: a\n" + LAUGHS + "\n", "aliases expand the document"),
    "alias bomb inside base": ("name: a\nbase:\n  " + LAUGHS.replace("\n", "\n  ") + "\n", "aliases expand"),
    "recursive alias": ("name: a\nbase: &loop {inner: *loop}\n", "refers to the node that contains it"),
    "nesting too deep": ("name: a\nbase: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    "tab-indented YAML": ("name: a\nbase:\n\ttraining: {}\n", "not valid YAML"),
    "NUL byte in the text": ("name: a\x00\n", "not valid YAML"),
    "a list at the top level": ("- name\n- a\n", "must be a mapping"),
}


@pytest.mark.parametrize("text,expected", RAW.values(), ids=RAW.keys())
def test_malformed_yaml_text(tmp_path, capsys, text, expected):
    (tmp_path / "sweep.yaml").write_text(text)
    assert_rejected(tmp_path, capsys, tmp_path / "sweep.yaml", expected)


def test_binary_garbage_is_named_as_not_text(tmp_path, capsys):
    (tmp_path / "sweep.yaml").write_bytes(bytes(range(256)) * 8)
    assert_rejected(tmp_path, capsys, tmp_path / "sweep.yaml", "not a UTF-8 text file")


def test_oversized_file(tmp_path, capsys):
    (tmp_path / "sweep.yaml").write_text("name: a\n# " + "x" * (2 << 20) + "\n")
    assert_rejected(tmp_path, capsys, tmp_path / "sweep.yaml", "a configuration is at most")


# --- valid YAML, invalid sweep: (sweep overrides, expected fragment) -------------------------------------------
BAD = {
    # strict types: no booleans as numbers, no strings as numbers, finite floats
    "steps: true": ({"base": base_with(training={"steps": True})}, "base.training.steps"),
    "steps as a string": ({"base": base_with(training={"steps": "50"})}, "base.training.steps"),
    "steps as a float": ({"base": base_with(training={"steps": 50.5})}, "base.training.steps"),
    "lr: .inf": ({"base": base_with(training={"lr": float("inf")})}, "base.training.lr"),
    "lr: .nan": ({"base": base_with(training={"lr": float("nan")})}, "base.training.lr"),
    "floor_sigma: .nan": ({"base": base_with(separation={"floor_sigma": float("nan")})},
                          "base.separation.floor_sigma"),
    "epsilon: -.inf": ({"base": base_with(separation={"epsilon": float("-inf")})}, "base.separation.epsilon"),
    "noise level .inf": ({"base": base_with(evaluation={"noise_levels": [0.01, float("inf")]})},
                         "base.evaluation.noise_levels.1"),
    "data.seed: false": ({"base": base_with(data={"seed": False})}, "base.data.seed"),
    "resources.cpu: true": ({"resources": {"cpu": True}}, "resources.cpu"),
    "max_concurrent: true": ({"max_concurrent": True}, "max_concurrent"),
    "num_samples: 2.5": ({"search": {"num_samples": 2.5}}, "search.num_samples"),
    "uniform to .inf": ({"space": {"training.lr": {"uniform": [0.001, float("inf")]}}},
                        "space.training.lr.uniform.1"),
    "randint from true": ({"space": {"training.seed": {"randint": [True, 5]}}}, "space.training.seed.randint.0"),
    "randint of three": ({"space": {"training.seed": {"randint": [0, 5, 9]}}}, "space.training.seed.randint"),
    "empty ladder": ({"base": base_with(schedule={"ladder": []})}, "base.schedule.ladder"),
    "negative ladder level": ({"base": base_with(schedule={"ladder": [0.1, -0.2]})}, "base.schedule.ladder.1"),
    "a huge string value": ({"base": base_with(training={"lr": "x" * 200_000})}, "base.training.lr"),
    # names that become paths
    "experiment ../../x": ({"experiment": "../../x"}, "experiment"),
    "experiment /abs": ({"experiment": "/tmp/elsewhere"}, "experiment"),
    "name ../up": ({"name": "../up"}, "name"),
    "name too long": ({"name": "n" * 500}, "name"),
    "source ../etc": ({"base": base_with(data={"sources": ["../etc"]})}, "base.data.sources.0"),
    "no sources": ({"base": base_with(data={"sources": []})}, "base.data.sources"),
    "split outside root": ({"base": base_with(data={"kind": "stems", "root": "data", "train_split": "../../x"})},
                           "base.data.train_split"),
    "trial name with a slash": ({"base": {**TINY_BASE, "name": "a/b"}}, "base.name"),
    # objectives must be metrics a trial reports
    "misspelt objective": ({"search": {"objectives": {"aurocc": "max"}}}, "search.objectives.aurocc"),
    "unknown source": ({"search": {"objectives": {"auroc/guitar": "max"}}}, "no source 'guitar'"),
    "σ not evaluated": ({"search": {"objectives": {"auroc@0.5": "max"}}}, "not one of evaluation.noise_levels"),
    "σ not a number": ({"search": {"objectives": {"auroc@high": "max"}}}, "search.objectives.auroc@high"),
    "per-source form of a plain metric": ({"search": {"objectives": {"si_sdri/sin": "max"}}}, "no per-source form"),
    "plain form of a per-source metric": ({"search": {"objectives": {"bits_per_sample": "min"}}}, "per source only"),
    "ratio without background": ({"search": {"objectives": {"auroc_ratio": "max"}}}, "evaluation.background"),
    "separation metric, separation off": ({"base": base_with(separation={"enabled": False}),
                                           "search": {"objectives": {"si_sdr": "max"}}}, "separation.enabled"),
    "matched AUROC of a plain prior": ({"search": {"objectives": {"auroc_matched": "max"}}}, "σ-conditional"),
    "unknown ASHA metric": ({"search": {"objectives": {"auroc": "max"}},
                             "scheduler": {"kind": "asha", "metric": "acc"}}, "scheduler.metric"),
    # prior hyper-parameters, checked against the family's constructor
    "WaveNet hparams on a FloWaveNet": ({"base": base_with(prior={"name": "wavenet", "preset": "tiny",
                                                                  "hparams": {"stacks": 1}}),
                                         "space": {"prior.name": {"grid": ["wavenet", "flowavenet"]}}},
                                        "flowavenet takes no such parameter"),
    "hparam of the wrong type": ({"base": base_with(prior={"hparams": {"width": "wide"}})}, "expects int"),
    "hparam true for an int": ({"base": base_with(prior={"hparams": {"layers": True}})}, "expects int"),
    "num_sources is the data's": ({"base": base_with(prior={"hparams": {"num_sources": 2}})},
                                  "no such parameter"),
    # σ lives in the schedule only
    "training.noise.sigma": ({"base": base_with(training={"noise": {"sigma": 0.1}})}, "training.noise.sigma"),
    "clipped noise on unit-RMS audio": ({"base": base_with(training={"noise": {"clip": True}})},
                                        "training.noise.clip assumes audio in [-1, 1]"),
    "mu-law head on unit-RMS audio": ({"base": base_with(prior={"name": "wavenet", "hparams": {"head": "mulaw"}})},
                                      "set data.normalise: peak"),
    "unknown normalisation": ({"base": base_with(data={"normalise": "loudness"})}, "base.data.normalise"),
    # a tracking database that cannot be reached: one line, before Ray starts, with the password hidden
    "unreachable PostgreSQL": ({"mlflow": {"tracking_uri": "postgresql://study:s3cret@127.0.0.1:1/mlflow"}},
                               "cannot reach postgresql://study:***@127.0.0.1:1/mlflow"),
    "more CPU than this machine has": ({"resources": {"cpu": 64}}, "resources: one trial asks for 64 CPU"),
    # places and sizes that would silently mean something else
    "storage: empty": ({"storage": ""}, "storage"),
    "more evaluation clips than the test split": ({"base": base_with(evaluation={"clips": 10_000})},
                                                  "evaluation.clips=10000 exceeds the test split"),
    "slakh without a root": ({"base": base_with(data={"kind": "slakh"})}, "data.root is required"),
    # bounded spaces
    "a grid of 10⁵ trials": ({"space": {f"training.seed{i}": {"grid": list(range(10))} for i in range(5)}},
                             "at most 10,000"),
    "space key through a value": ({"space": {"training.steps.inner": {"grid": [1]}}},
                                  "space.training.steps.inner: training.steps is a value"),
    "variant that is not a mapping": ({"space": {"variant": {"grid": [1]}}}, "space.variant"),
    # tracking
    "bogus tracking scheme": ({"mlflow": {"tracking_uri": "bogus://x"}}, "mlflow.tracking_uri"),
    "sqlite without a path": ({"mlflow": {"tracking_uri": "sqlite://mlflow.db"}}, "a sqlite URI names a file"),
}


@pytest.mark.parametrize("overrides,expected", BAD.values(), ids=BAD.keys())
def test_malformed_sweep(tmp_path, capsys, overrides, expected):
    assert_rejected(tmp_path, capsys, write_sweep(tmp_path, **overrides), expected)


# --- command-line flags -------------------------------------------------------------------------------------
FLAGS = {
    "--tracking-uri bogus": (["--tracking-uri", "bogus://x"], "mlflow.tracking_uri"),
    "--max-concurrent 0": (["--max-concurrent", "0"], "max_concurrent"),
    "--set with an empty key part": (["--set", "base..steps=1"], "empty part in the key path"),
    "--set with a duplicate key": (["--set", "base.training={steps: 1, steps: 2}"], "duplicate key 'steps'"),
    "--set to .inf": (["--set", "base.training.lr=.inf"], "base.training.lr"),
}


@pytest.mark.parametrize("flags,expected", FLAGS.values(), ids=FLAGS.keys())
def test_malformed_flags(tmp_path, capsys, flags, expected):
    assert_rejected(tmp_path, capsys, write_sweep(tmp_path), expected, *flags)


def test_yaml_1_2_floats_are_numbers(tmp_path):
    """``lr: 1e-3`` is a number (YAML 1.1 would make it a string, which strict types then reject)."""
    from study.sweep.cli import load_sweep

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "floats", "base": TINY_BASE}) + "")
    sweep = load_sweep(path, ["base.training.lr=1e-3", "base.separation.epsilon=2E-5"])
    assert sweep.base["training"]["lr"] == 0.001 and sweep.base["separation"]["epsilon"] == 2e-5


def test_merge_semantics_are_shared_by_set_and_space(tmp_path):
    """A mapping assigned through --set or a space value merges into the section; a scalar replaces."""
    from study.sweep.cli import load_sweep
    from study.sweep.config import trial_tree

    path = write_sweep(tmp_path)
    sweep = load_sweep(path, ["base.prior={preset: small}"])
    assert sweep.base["prior"] == {"name": "wavenet", "preset": "small"}
    assert trial_tree(sweep.base, {"prior": {"name": "flowavenet"}})["prior"] == {"name": "flowavenet",
                                                                                   "preset": "small"}


def test_a_large_sampled_space_validates_in_bounded_time(tmp_path, capsys):
    """5 choice dimensions × 40 values (40⁵ ≈ 10⁸ combinations), random search, 20 samples: validated by its
    single values and a fixed sample of combinations, never the product."""
    space = {f"evaluation.{key}": {"choice": list(range(2, 42))} for key in ("clips", "seed")}
    space.update({f"training.{key}": {"choice": list(range(2, 42))} for key in ("steps", "seed", "log_every")})
    path = write_sweep(tmp_path, space=space, search={"kind": "random", "num_samples": 20})
    start = time.perf_counter()
    code, out, err = run_cli(tmp_path, capsys, path, "--dry-run")
    assert code == 0, err
    assert time.perf_counter() - start < 30 and "20 trials" in out


def test_alias_bomb_is_rejected_quickly_under_a_memory_limit(tmp_path):
    """A billion-laughs file (10⁹ values when expanded) exits 2 within 5 s in a process limited to 4 GB."""
    path = tmp_path / "sweep.yaml"
    path.write_text("name: a\nbase:\n  " + LAUGHS.replace("\n", "\n  ") + "\n")

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "study.sweep", str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, preexec_fn=limit_memory)
    elapsed = time.perf_counter() - start
    assert done.returncode == 2 and "aliases expand the document" in done.stderr, done.stderr[-2000:]
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_missing_data_folder_exits_2_before_ray_with_the_command_that_renders_it(tmp_path, capsys):
    """The shipped chorales sweep before its data is rendered: one line naming the folder and the command that
    makes it, in well under 5 s, nothing created (no Ray, no MLflow, no storage)."""
    start = time.perf_counter()
    assert_rejected(tmp_path, capsys, os.path.join(REPO, "sweeps", "chorales_frontier.yaml"),
                    "error: data.root: data/chorales: dataset root does not exist; "
                    "render it with: python -m study.data.chorales --out data/chorales")
    assert time.perf_counter() - start < 5
    # a data folder that only one grid value reads, and that holds a track without one of its sources
    track = tmp_path / "stems" / "train" / "t0"
    track.mkdir(parents=True)
    for source in ("drums", "bass", "other"):
        (track / f"{source}.wav").write_bytes(b"RIFF")
    path = write_sweep(tmp_path, space={"variant": {"grid": [{"data": {"kind": "toy"}},
                                                             {"data": {"kind": "stems", "root": str(tmp_path / "stems")}}]}})
    assert_rejected(tmp_path, capsys, path, f"error: data.root: {track / 'vocals.wav'}: missing")


@pytest.mark.parametrize("objectives,expected", [
    ({"sisdr": "max"}, "search.objectives.sisdr: no trial reports 'sisdr': no metric family 'sisdr'; did you mean "
                       "'si_sdr'? (--list-metrics shows every metric the trials report)"),
    ({"si_sdr/sine": "max"}, "no source 'sine'; did you mean 'sin'?"),
])
def test_a_misspelt_objective_gets_a_suggestion_and_the_full_list_on_request(tmp_path, capsys, objectives, expected):
    path = write_sweep(tmp_path, search={"kind": "grid", "objectives": objectives})
    assert_rejected(tmp_path, capsys, path, expected)
    code, out, err = run_cli(tmp_path, capsys, path, "--list-metrics")
    listed = out.split()
    assert code == 0 and {"si_sdr", "si_sdri", "si_sdri_se", "auroc@0.01", "logp_drop@0.01", "si_sdr/sin"} <= set(listed)
    assert "auroc_ratio" not in listed  # needs evaluation.background
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]
