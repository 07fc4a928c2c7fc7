"""Trials: stage plans, a tiny end-to-end run, resumption, determinism and failures with reasons."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from models import load_prior
from study.measure.names import level_name
from study.trial.stages import plan_stages, separation_levels, stage_keys
from study.config.schema import TrialConfig
from study.store.stage_store import StageStore
from study.trial.run import TrialError, run_trial

TIMING = ("seconds", "per_s", "speedup")  # in a metric's name: a timing, different on every run


def tiny(**sections) -> TrialConfig:
    tree = {
        "data": {"train_size": 300, "test_size": 100},
        "prior": {"name": "wavenet", "preset": "tiny"},
        "training": {"steps": 300, "batch_size": 8, "crop": 1024, "lr": 3e-3, "log_every": 1000},
        "schedule": {"kind": "from_clean", "sigma": 0.077, "finetune_steps": 100},
        "evaluation": {"clips": 48, "crop": 1024, "noise_levels": [0.01]},
        "separation": {"mixtures": 2, "length": 512, "steps_per_level": 20, "listen_seconds": 0},
        "threads": 2,
    }
    for name, update in sections.items():
        tree[name] = {**tree.get(name, {}), **update}
    return TrialConfig.model_validate(tree)


def quiet(line):
    pass


def test_stage_plans():
    ladder = [1.0, 0.359, 0.129, 0.077, 0.027, 0.01]
    chained = plan_stages(tiny(schedule={"kind": "chained", "sigma": 0.077, "ladder": ladder}))
    assert [s.sigma for s in chained] == [0.0, 0.01, 0.027, 0.077]
    assert [s.init_from for s in chained] == [None, 0, 1, 2]
    from_clean = plan_stages(tiny(schedule={"kind": "from_clean", "sigma": 0.129}))
    assert [(s.sigma, s.init_from, s.steps) for s in from_clean] == [(0.0, None, 300), (0.129, 0, 100)]
    scratch = plan_stages(tiny(schedule={"kind": "scratch", "sigma": 0.129}))
    assert [(s.sigma, s.init_from, s.steps) for s in scratch] == [(0.129, None, 300)]
    assert len(plan_stages(tiny(schedule={"kind": "from_clean", "sigma": 0.0}))) == 1
    # separation: stage σ in decreasing order, the clean stage at the floor, optional entry level
    cfg = tiny(schedule={"kind": "chained", "sigma": 0.077, "ladder": ladder})
    assert separation_levels(chained, cfg.separation) == [(0.077, 3), (0.027, 2), (0.01, 1)]  # not the clean one
    entered = tiny(separation={"start_sigma": 0.03}).separation
    assert separation_levels(chained, entered) == [(0.027, 2), (0.01, 1)]


def test_tiny_trial_end_to_end_and_resume(tmp_path):
    reports, cfg = [], tiny(separation={"listen_seconds": 2.0})
    final = run_trial(cfg, tmp_path, report=lambda m, d: reports.append((m, d)), log=quiet)
    assert [m["stage"] for m, _ in reports] == [0, 1]
    assert [m["stage_sigma"] for m, _ in reports] == [0.0, 0.077]
    store = StageStore(tmp_path / "stages")
    for metrics, folder in reports:  # one stored prior, metrics row and artifacts per stage
        assert metrics["stage_reused"] == 0.0 and store.is_complete(metrics["stage_key"])
        assert store.exists(f"{metrics['stage_key']}/prior.pt")
        assert not store.exists(f"{metrics['stage_key']}/train.pt")  # mid-stage checkpoint gone once finished
        assert json.loads((folder / "metrics.json").read_text())["stage"] == metrics["stage"]
        for name in ("cross_likelihood.csv", "cross_likelihood.png", "noise_curve.png"):
            assert (folder / name).stat().st_size > 0
    clean = reports[0][0]
    print({k: round(v, 3) for k, v in final.items() if isinstance(v, float)})
    assert clean["auroc"] > 0.7  # clearly above chance after 300 steps
    for key in ("auroc", "auroc@0.01", "logp_drop@0.01", "bits_per_sample/sin", "si_sdr", "si_sdri", "sdr",
                "sdr/saw", "si_sdr/triangle"):
        assert math.isfinite(final[key]), key
    assert final["separation_diverged"] == 0.0
    # the diagnosis beside the score: the same sampler started at the true sources, and both per-level traces
    assert final["oracle_start_diverged"] == 0.0 and math.isfinite(final["si_sdr_oracle_start"])
    assert final["si_sdr_oracle_start"] > final["si_sdr"]  # 20 steps per level cannot walk far from the truth
    assert final["si_sdri_oracle_start"] == pytest.approx(final["si_sdr_oracle_start"] - final["si_sdr_mixture"])
    levels = [level_name(s) for s, _ in separation_levels(plan_stages(tiny()), tiny().separation)]
    assert {f"si_sdr_trace/{x}" for x in levels} | {f"si_sdr_oracle_trace/{x}" for x in levels} <= set(final)
    assert final[f"si_sdr_trace/{levels[-1]}"] == pytest.approx(final["si_sdr"])
    # audio worth hearing: the scored crops joined with a gap, and 2 s of one mixture separated as such
    audio, rate = tmp_path / "separation" / "audio", 14_700
    names = {"mixture.wav", *(f"{s}_{role}.wav" for s in ("sin", "square", "saw", "triangle")
                              for role in ("reference", "estimate"))}
    assert {p.name for p in (audio / "crops").iterdir()} == names == {p.name for p in (audio / "excerpt").iterdir()}
    assert sf.info(audio / "crops" / "mixture.wav").frames == 2 * 512 + int(0.15 * rate)
    excerpt = {name: sf.read(audio / "excerpt" / name)[0] for name in names}
    assert all(len(x) == 58 * 512 >= 2 * rate for x in excerpt.values())  # ⌈2 s / 512⌉ consecutive crops
    references = np.stack([excerpt[f"{s}_reference.wav"] for s in ("sin", "square", "saw", "triangle")])
    assert np.allclose(references.mean(0), excerpt["mixture.wav"], atol=1e-6)  # the mixture of those sources
    estimate = excerpt["sin_estimate.wav"]  # sampled from the mixture, not the mixture copied through
    assert np.isfinite(estimate).all() and np.abs(estimate - excerpt["mixture.wav"]).max() > 1e-3
    assert (tmp_path / "separation" / "si_sdr_per_level.png").is_file()
    # re-running reuses every stored stage, evaluation and separation: nothing is trained again
    again, lines = [], []
    resumed = run_trial(cfg, tmp_path, report=lambda m, d: again.append(m), log=lines.append)
    assert [m["stage_reused"] for m in again] == [1.0, 1.0]
    assert not any(line.startswith(("step ", "--- separation", "--- listening")) for line in lines)  # nothing ran
    assert sum("reused" in line for line in lines) == 2
    same = lambda m: {k: v for k, v in m.items() if k != "stage_reused" and not k.startswith("compute_")}  # noqa: E731
    assert same(resumed) == same(final)
    assert resumed["compute_train_steps"] == 0.0 and final["compute_train_steps"] == 400.0  # what ran, counted
    with pytest.raises(TrialError, match="different configuration"):
        run_trial(tiny(schedule={"sigma": 0.129}), tmp_path, log=quiet)


def test_from_clean_starts_from_clean_weights(tmp_path):
    cfg = tiny(training={"steps": 20}, schedule={"finetune_steps": 0}, separation={"enabled": False})
    run_trial(cfg, tmp_path, log=quiet)
    store, keys = StageStore(tmp_path / "stages"), stage_keys(cfg, plan_stages(cfg))
    clean, tuned = (load_prior(store.path(f"{key}/prior.pt")) for key in keys)
    assert all(torch.equal(a, b) for a, b in zip(clean.state_dict().values(), tuned.state_dict().values()))


def test_same_seed_same_metrics(tmp_path):
    cfg = tiny(training={"steps": 30}, schedule={"finetune_steps": 10}, evaluation={"clips": 8})
    first = run_trial(cfg, tmp_path / "a", log=quiet)
    second = run_trial(cfg, tmp_path / "b", log=quiet)
    strip = lambda m: {k: v for k, v in m.items() if not any(t in k for t in TIMING)}  # noqa: E731
    assert strip(first) == strip(second)


def test_nan_in_training_or_evaluation_fails_the_trial_with_a_reason(tmp_path, monkeypatch):
    from models.wavenet import WaveNet
    from study.trial.evaluate import EvaluationError
    from study.trial.train import TrainingError

    real = WaveNet.log_prob
    real_step = torch.optim.Adam.step
    steps = {"n": 0}  # optimiser steps taken, so the NaN lands at a step however the batch is split over cores

    def counted_step(self, *args, **kwargs):
        steps["n"] += 1
        return real_step(self, *args, **kwargs)

    def nan_after_five(self, x, sigma=None):
        out = real(self, x, sigma)
        return out * float("nan") if steps["n"] >= 5 else out

    monkeypatch.setattr(torch.optim.Adam, "step", counted_step)
    monkeypatch.setattr(WaveNet, "log_prob", nan_after_five)
    cfg = tiny(training={"steps": 20}, separation={"enabled": False})
    with pytest.raises(TrainingError, match="non-finite training loss at step 5"):
        run_trial(cfg, tmp_path / "train", log=quiet)

    monkeypatch.setattr(WaveNet, "log_prob",
                        lambda self, x, sigma=None: real(self, x, sigma) * (float("nan") if not self.training else 1))
    with pytest.raises(EvaluationError, match=r"non-finite log-likelihoods from prior\(s\) \['sin'"):
        run_trial(cfg, tmp_path / "eval", log=quiet)


def test_cli_rejects_bad_config_with_field_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {steps: many}\nprior: {name: wavenet, preset: tiny}\n")
    run = subprocess.run([sys.executable, "-m", "study.trial", str(bad), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "training.steps" in run.stderr
    assert not (tmp_path / "out").exists()
    typo = subprocess.run([sys.executable, "-m", "study.trial", str(bad), "--out", str(tmp_path / "out"),
                           "--set", "training.steps=5", "--set", "separation.mixturez=3"],
                          capture_output=True, text=True)
    assert typo.returncode == 2 and "separation.mixturez" in typo.stderr


TRIAL_MISTAKES = {  # (trial YAML, --set overrides, expected fragment of the one-line error)
    "missing stems root": ("data: {kind: stems, root: nowhere}\n", [], "dataset root does not exist"),
    "stems without a source file": ("data: {kind: stems, root: data, sources: [a, b]}\n", [], "b.wav: missing stem"),
    "unknown prior": ("prior: {name: transformer}\n", [], "unknown prior 'transformer'"),
    "hparams of another family": ("prior: {name: flowavenet, preset: tiny, hparams: {stacks: 2}}\n", [],
                                  "prior.hparams.stacks: flowavenet takes no such parameter"),
    "binary file": (b"\xff\xfe\x00garbage", [], "not a UTF-8 text file"),
    "noise.sigma": ("training: {noise: {sigma: 0.1}}\n", [], "training.noise.sigma is not a setting"),
    "steps: true via --set": ("{}\n", ["training.steps=true"], "training.steps"),
    "score prior with the hybrid term": ("prior: {name: scorenet, preset: tiny}\ntraining: {hybrid_lambda: 1.0}\n",
                                         [], "training.hybrid_lambda: scorenet trains by denoising"),
    "ladder outside the score prior's range": ("prior: {name: scorenet, preset: tiny}\n"
                                               "schedule: {ladder: [2.0, 0.1, 0.01]}\n", [],
                                               "covers σ in [sigma_min=0.01, sigma_max=1]"),
}


@pytest.mark.parametrize("text,overrides,expected", TRIAL_MISTAKES.values(), ids=TRIAL_MISTAKES.keys())
def test_cli_user_mistakes_are_one_line_exit_2(tmp_path, text, overrides, expected):
    track = tmp_path / "data" / "train" / "t0"
    track.mkdir(parents=True)
    import numpy as np
    import soundfile as sf

    sf.write(track / "a.wav", np.zeros(1000, dtype=np.float32), 8000)  # only the first source is there
    config = tmp_path / "trial.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    run = subprocess.run([sys.executable, "-m", "study.trial", str(config), "--out", str(tmp_path / "out"),
                          *(f"--set={o}" for o in overrides)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 2 and expected in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) <= 3, run.stderr[-2000:]


def test_a_failed_start_does_not_claim_the_output_folder(tmp_path):
    """A wrong data path fails before any stage finishes; the corrected command then runs in the same folder."""
    wrong = tiny(data={"kind": "stems", "root": str(tmp_path / "nowhere")})
    from study.data import DataError

    with pytest.raises(DataError):
        run_trial(wrong, tmp_path / "out", log=quiet)
    fixed = tiny(training={"steps": 10}, schedule={"finetune_steps": 0}, evaluation={"clips": 8},
                 separation={"enabled": False})
    assert run_trial(fixed, tmp_path / "out", log=quiet)["stage"] == 1


def test_noise_conditional_trial_reports_matched_auroc_and_separates_over_the_ladder(tmp_path):
    ladder = [1.0, 0.359, 0.129, 0.046, 0.01]
    cfg = tiny(prior={"name": "wavenet_nc", "preset": "tiny"}, training={"steps": 40},
               schedule={"kind": "scratch", "sigma": 0.129, "ladder": ladder},
               evaluation={"clips": 8, "noise_levels": [0.01, 0.129]})
    final = run_trial(cfg, tmp_path, log=quiet)
    assert 0 <= final["auroc_matched_min"] <= final["auroc_matched"] <= 1
    assert final["separation_levels"] == 3  # ladder levels ≤ σ* = 0.129, one model told each σ
    assert math.isfinite(final["si_sdr"]) and math.isfinite(final["auroc_complexity"])
    assert separation_levels(plan_stages(cfg), cfg.separation, ladder) == [(0.129, 0), (0.046, 0), (0.01, 0)]
    entered = tiny(separation={"start_sigma": 0.05}).separation
    assert separation_levels(plan_stages(cfg), entered, ladder) == [(0.046, 0), (0.01, 0)]


def test_background_prior_gives_a_likelihood_ratio_score(tmp_path):
    cfg = tiny(training={"steps": 30}, schedule={"kind": "scratch", "sigma": 0.0},
               evaluation={"clips": 8, "background": True, "background_steps": 20}, separation={"enabled": False})
    final = run_trial(cfg, tmp_path, log=quiet)
    assert 0 <= final["auroc_ratio"] <= 1 and "auroc_ratio/sin" in final
    from study.trial.stages import background_key

    background = load_prior(StageStore(tmp_path / "stages").path(f"{background_key(cfg)}/prior.pt"))
    assert background.num_sources == 1


def test_score_prior_trial_trains_by_denoising_and_separates_with_every_sampler_setting(tmp_path):
    """A scorenet goes through the same schedule, evaluation (its bound as log p) and separation as the
    other families; the predictor, projected start and growing steps are taken from the config."""
    ladder = [1.0, 0.1, 0.01]
    cfg = tiny(prior={"name": "scorenet", "preset": "tiny", "hparams": {"bound_nodes": 4}}, training={"steps": 30},
               schedule={"kind": "from_clean", "sigma": 1.0, "finetune_steps": 20, "ladder": ladder},
               evaluation={"clips": 8, "noise_levels": [0.1]},
               separation={"steps_per_level": 5, "steps_growth": 4.0, "init": "projected",
                           "predictor": "reverse_diffusion"})
    lines = []
    final = run_trial(cfg, tmp_path, log=lines.append)
    assert any("denoising loss" in line for line in lines)
    assert 0 <= final["auroc"] <= 1 and 0 <= final["auroc_matched"] <= 1 and math.isfinite(final["si_sdri"])
    assert final["separation_levels"] == 3
    assert math.isfinite(final["si_sdr_oracle_start"]) and f"si_sdr_trace/{level_name(0.01)}" in final
    assert any("predictor reverse_diffusion" in line for line in lines)


@pytest.mark.parametrize("sampler", [
    {"levels": "karras", "karras_levels": 4, "init": "noised_prior", "rule": "dirac", "pinned_sigma": "matched",
     "churn": 0.5},
    {"init": "denoiser", "rule": "smoothed_map", "epsilon": 1e-12},  # steps too small to move
])
def test_isdm_style_sampler_settings_run_in_a_trial_with_the_likelihood_gap_and_denoising_check(tmp_path, sampler):
    """A score prior over a ladder above the sources' RMS (σ_max = 2, log-normal training levels), separated by
    the ISDM-style settings: the trial reports the likelihood gap for both starts and the per-σ denoising check."""
    ladder = [2.0, 0.5, 0.1, 0.01]
    cfg = tiny(prior={"name": "scorenet", "preset": "tiny", "hparams": {"bound_nodes": 2, "sigma_max": 2.0}},
               training={"steps": 20, "noise": {"levels": "lognormal"}},
               schedule={"kind": "scratch", "sigma": 2.0, "ladder": ladder},
               evaluation={"clips": 8, "noise_levels": [0.1]},
               separation={"steps_per_level": 3, **sampler})
    final = run_trial(cfg, tmp_path, log=quiet)
    assert final["separation_levels"] == 4  # 4 Karras levels, or the 4 ladder levels
    assert math.isfinite(final["likelihood_gap"]) and math.isfinite(final["likelihood_gap_oracle_start"])
    if sampler.get("epsilon"):  # chains that cannot move: the oracle start ends at the truth, a gap of zero
        assert abs(final["likelihood_gap_oracle_start"]) < 1e-3
    assert {f"denoise_si_sdr@{level_name(s)}" for s in ladder} <= set(final)
    assert final[f"noisy_si_sdr@{level_name(2.0)}"] < final[f"noisy_si_sdr@{level_name(0.01)}"]
    assert (tmp_path / "separation" / "likelihood_gap.png").is_file()


def test_supervised_reference_is_trained_once_per_store_and_scored_on_the_separation_mixtures(tmp_path):
    """ConvTasNet beside the priors: trained once, reused by a second trial on the same store (no second
    training line), and its SI-SDRi measured against the same do-nothing baseline."""
    store = StageStore(tmp_path / "store")
    cfg = tiny(training={"steps": 5}, schedule={"kind": "scratch", "sigma": 0.0},
               evaluation={"clips": 4, "noise_levels": [0.01]},
               separation={"mixtures": 2, "length": 256, "steps_per_level": 1, "reference_steps": 20,
                           "oracle_start": False})
    first, second = [], []
    a = run_trial(cfg, tmp_path / "a", store=store, log=first.append)
    b = run_trial(cfg.model_copy(update={"name": "other"}), tmp_path / "b", store=store, log=second.append)
    assert sum("supervised reference (ConvTasNet) step 20/20" in line for line in first) == 1
    assert not any("ConvTasNet" in line for line in second)
    assert a["si_sdri_supervised"] == b["si_sdri_supervised"] and math.isfinite(a["si_sdri_supervised"])
    assert abs(a["si_sdr_supervised"] - a["si_sdri_supervised"] - a["si_sdr_mixture"]) < 1e-6


def test_long_work_reports_progress_at_a_modest_rate():
    from study.trial.progress import Progress

    lines = []
    progress = Progress(lines.append, "separation", every=0.0)
    for level in range(1, 5):
        progress(level, 4, f"level {level}")
    assert len(lines) == 3 and lines[0].startswith("separation: 1/4 (level 1)") and "s left" in lines[0]
    quiet_lines = []
    slow = Progress(quiet_lines.append, "evaluation", every=3600.0)
    for level in range(1, 5):
        slow(level, 4, "pass")
    assert quiet_lines == []  # short work says nothing


def test_a_diverged_separation_and_excerpt_say_why_on_the_console_in_a_metric_and_beside_the_audio(tmp_path):
    cfg = tiny(training={"steps": 30}, schedule={"kind": "scratch", "sigma": 0.0}, evaluation={"clips": 8},
               separation={"epsilon": 1.0, "bound": 0.5, "oracle_start": False, "listen_seconds": 0.05})
    for attempt in ("computed", "read back from the store"):  # said every time, not only when first computed
        lines = []
        final = run_trial(cfg, tmp_path, log=lines.append)
        assert final["separation_diverged"] == 1.0 and final["excerpt_diverged"] == 1.0, attempt
        assert "at level σ=" in final["separation_error"] and "at level σ=" in final["excerpt_error"]  # tags
        warnings = [line for line in lines if line.startswith("warning: ")]
        assert any("separation diverged: no scores" in line for line in warnings), (attempt, lines)
        assert any("listening excerpt diverged" in line for line in warnings), (attempt, lines)
    note = (tmp_path / "separation" / "audio" / "diverged.txt").read_text()
    assert note.startswith("no audio: the separation diverged (") and "at level σ=" in note
    assert (tmp_path / "separation" / "audio" / "excerpt" / "diverged.txt").exists()


def test_a_sampler_that_returns_its_start_is_flagged(tmp_path):
    """ε so small that the chains cannot move: the scores are the mixture's, and the trial says so."""
    cfg = tiny(training={"steps": 30}, schedule={"kind": "scratch", "sigma": 0.0}, evaluation={"clips": 8},
               separation={"epsilon": 1e-14, "oracle_start": False, "mixtures": 3})
    lines = []
    final = run_trial(cfg, tmp_path, log=lines.append)
    assert final["separation_moved"] < 1e-4 and abs(final["si_sdri"]) < 1e-3
    assert "almost unchanged" in final["separation_unchanged"]
    assert any(line.startswith("warning: the sampler left its start") for line in lines), lines
    assert final["si_sdri_se"] >= 0 and math.isfinite(final["si_sdr_se"]) and math.isfinite(final["sdr_se"])


def test_a_separator_taught_by_the_priors_is_stored_once_starts_the_sampler_and_is_measured(tmp_path):
    """separation.separator: trained once per store (a second trial with the same priors reuses it), its scores,
    likelihood gaps (against the truth and the sampler) and time per mixture reported beside the sampler's; the
    sampler starts from its estimates and re-separates pairs (Gibbs); the untrained control has a key of its own."""
    store = StageStore(tmp_path / "store")
    ladder = [1.0, 0.1, 0.01]
    cfg = tiny(prior={"name": "scorenet", "preset": "tiny", "hparams": {"bound_nodes": 2}}, training={"steps": 20},
               schedule={"kind": "scratch", "sigma": 1.0, "ladder": ladder}, evaluation={"clips": 4, "noise_levels": [0.1]},
               separation={"steps_per_level": 2, "init": "amortised", "gibbs_sweeps": 1, "oracle_start": False,
                           "separator": {"steps": 4, "select_every": 2, "crop": 256, "batch_size": 2,
                                         "select_mixtures": 2}})
    first, second, control = [], [], []
    a = run_trial(cfg, tmp_path / "a", store=store, log=first.append)
    b = run_trial(cfg.model_copy(update={"name": "other"}), tmp_path / "b", store=store, log=second.append)
    assert sum("separator step 4/4" in line for line in first) == 1
    assert not any("separator step" in line for line in second)
    for name in ("si_sdri_amortised", "si_sdr_amortised", "likelihood_gap_amortised",
                 "likelihood_gap_amortised_vs_langevin", "separation_seconds_per_mixture_amortised",
                 "separation_seconds_per_mixture", "si_sdri_amortised_trace/4", "amortised_speedup"):
        assert math.isfinite(a[name]), name
    for name in ("si_sdri_amortised", "likelihood_gap_amortised", "si_sdri_amortised_trace/4"):
        assert a[name] == b[name], name  # the stored separator's (timings are measured on each run)
    assert a["separator_selected_step"] in (2, 4)
    assert any("init amortised" in line for line in first)
    assert (tmp_path / "a" / "separator" / "si_sdri_by_step.png").is_file()
    untrained = cfg.model_copy(update={"separation": cfg.separation.model_copy(update={
        "separator": cfg.separation.separator.model_copy(update={"priors": "untrained"})})})
    c = run_trial(untrained, tmp_path / "c", store=store, log=control.append)
    assert sum("separator step 4/4" in line for line in control) == 1 and math.isfinite(c["si_sdri_amortised"])
