"""A trial: train every source prior through a noise schedule, measure each stage, then separate.

    python -m study.trial sweeps/trials/tiny.yaml --out runs/tiny [--set schedule.sigma=0.077 …]

``run_trial(config, out_dir, report)`` is what the sweep calls: a plain function with no Ray or MLflow in
it. Every stage trains (resumably), saves ``stage<i>/prior.pt``, is evaluated and handed to
``report(metrics, stage_dir)``; the last stage's metrics also carry the separation scores. Re-running on the
same folder skips finished stages and continues an interrupted one from its training checkpoint.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import yaml

from models import Prior, build_prior, load_prior, save_prior
from study.config import TrialConfig
from study.configio import ConfigError, load_config
from study.data import build_clips, mix
from study.evaluate import evaluate_prior, single_prior_log_likelihood
from study.metrics import level_name, separation_metrics, si_sdr
from study.ood import PooledSources, flac_log_density
from study.plots import (plot_cross_likelihood, plot_level_trace, plot_noise_curve, write_audio_examples,
                         write_matrix_csv)
from study.runtime import pick_device
from study.separate import LangevinSchedule, annealed_langevin
from study.train import train

Report = Callable[[dict, Path], None]
NOT_SEMANTIC = {"device", "threads", "name"}  # settings that do not change results


class TrialError(RuntimeError):
    """The output folder holds a trial with a different configuration. (Diverged training raises
    study.train.TrainingError; non-finite scores raise study.evaluate.EvaluationError.)"""


@dataclass(frozen=True)
class Stage:
    index: int
    sigma: float  # training noise level of this stage (0 = clean)
    steps: int
    init_from: int | None  # stage whose weights this stage starts from; None = random init


def plan_stages(cfg: TrialConfig) -> list[Stage]:
    """The stages of ``cfg.schedule`` (see :class:`study.config.ScheduleConfig`)."""
    target, steps = cfg.schedule.sigma, cfg.training.steps
    finetune = cfg.schedule.finetune_steps if cfg.schedule.finetune_steps is not None else steps
    if cfg.schedule.kind == "scratch":
        return [Stage(0, target, steps, None)]
    stages = [Stage(0, 0.0, steps, None)]
    if target == 0:
        return stages
    levels = sorted(l for l in cfg.schedule.ladder if l < target * (1 - 1e-6)) if cfg.schedule.kind == "chained" else []
    for sigma in [*levels, target]:
        previous = stages[-1].index
        stages.append(Stage(previous + 1, sigma, finetune, previous if cfg.schedule.kind == "chained" else 0))
    return stages


def separation_levels(stages: list[Stage], cfg, ladder=None) -> list[tuple[float, int]]:
    """(σ, stage index) in decreasing σ, entered at ``cfg.start_sigma`` when given.

    Unconditional priors: each stage's prior serves at its own σ (a clean one at ``floor_sigma``). With
    ``ladder`` (a noise-conditional prior), the last stage's prior serves every ladder level up to its σ.
    """
    levels = {}
    if ladder is not None:
        last = stages[-1]
        for sigma in ladder:
            if sigma <= max(last.sigma, cfg.floor_sigma) * (1 + 1e-6):
                levels[sigma] = last.index
    else:
        for stage in stages:  # a later stage at the same level (e.g. fine-tuned at the floor) wins
            levels[max(stage.sigma, cfg.floor_sigma)] = stage.index
    ordered = sorted(levels.items(), reverse=True) or [(cfg.floor_sigma, stages[-1].index)]
    if cfg.start_sigma is not None:
        entered = [(s, i) for s, i in ordered if s <= cfg.start_sigma * (1 + 1e-6)]
        ordered = entered or ordered[-1:]
    return ordered


def trial_id(cfg: TrialConfig) -> str:
    """Short hash of the settings that change results (dora-style): same config, same id, same folder."""
    semantic = cfg.model_dump(mode="json", exclude=NOT_SEMANTIC)
    return hashlib.sha256(json.dumps(semantic, sort_keys=True).encode()).hexdigest()[:10]


def _claim_folder(cfg: TrialConfig, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "trial_id"
    if marker.is_file() and marker.read_text().strip() != trial_id(cfg):
        raise TrialError(f"{out_dir} holds a trial with a different configuration (id {marker.read_text().strip()}, "
                         f"this one {trial_id(cfg)}); choose another output folder")
    marker.write_text(trial_id(cfg) + "\n")
    (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def _stage_prior(cfg: TrialConfig, stage: Stage, out_dir: Path, num_sources: int) -> Prior:
    if stage.init_from is not None:
        return load_prior(out_dir / f"stage{stage.init_from}" / "prior.pt")
    torch.manual_seed(cfg.training.seed)
    return build_prior(cfg.prior.name, cfg.prior.preset, num_sources=num_sources, **cfg.prior.hparams)


def run_stage(cfg: TrialConfig, stage: Stage, out_dir: Path, train_clips, eval_clips, device, log,
              compressor=None, background=None) -> tuple[dict, Prior]:
    folder = out_dir / f"stage{stage.index}"
    folder.mkdir(exist_ok=True)
    sources = train_clips.sources
    prior = _stage_prior(cfg, stage, out_dir, len(sources))
    training = cfg.training.model_copy(update={
        "steps": stage.steps, "seed": cfg.training.seed + stage.index,
        "noise": cfg.training.noise.model_copy(update={"sigma": stage.sigma})})
    log(f"--- stage {stage.index}: σ={stage.sigma:g}, {stage.steps} steps, "
        f"{'from stage %d' % stage.init_from if stage.init_from is not None else 'from scratch'}")
    trained = train(prior, train_clips, training, checkpoint=folder / "train.pt", device=device, log=log,
                    ladder=cfg.schedule.ladder)
    save_prior(prior, folder / "prior.pt")  # load_prior maps to CPU
    t0 = time.perf_counter()
    matched = [level for level in cfg.schedule.ladder if level <= stage.sigma * (1 + 1e-6)]
    metrics, tables = evaluate_prior(prior, eval_clips, sources, cfg.evaluation.noise_levels,
                                     cfg.evaluation.batch_size, device, cfg.evaluation.seed, compressor, matched,
                                     background)
    title = f"{cfg.prior.name}, stage {stage.index} (trained at σ={stage.sigma:g})"
    write_matrix_csv(folder / "cross_likelihood.csv", tables["cross_likelihood"], sources)
    plot_cross_likelihood(folder / "cross_likelihood.png", tables["cross_likelihood"], sources,
                          f"Cross-likelihood: {title}")
    plot_noise_curve(folder / "noise_curve.png", tables["noise_curve"], sources, f"log p under added noise: {title}")
    metrics.update(stage=stage.index, stage_sigma=stage.sigma, eval_seconds=time.perf_counter() - t0)
    if trained.samples_per_second > 0:  # a stage resumed after its training finished has no timing
        metrics.update(train_seconds=trained.wall_seconds, train_samples_per_s=trained.samples_per_second)
    return metrics, prior


def background_scores(cfg: TrialConfig, out_dir: Path, train_clips, eval_clips, device, log) -> torch.Tensor:
    """Train (or reload) the background prior on all sources pooled; its log p per sample of the
    evaluation clips, [N, K]."""
    folder = out_dir / "background"
    folder.mkdir(exist_ok=True)
    if (folder / "prior.pt").is_file():
        prior = load_prior(folder / "prior.pt").to(device)
    else:
        torch.manual_seed(cfg.training.seed)
        prior = build_prior(cfg.prior.name, cfg.prior.preset, num_sources=1, **cfg.prior.hparams)
        steps = cfg.evaluation.background_steps or cfg.training.steps
        log(f"--- background prior: {cfg.prior.name} on all sources pooled, {steps} clean steps")
        training = cfg.training.model_copy(update={"steps": steps,
                                                   "noise": cfg.training.noise.model_copy(update={"sigma": 0.0})})
        train(prior, PooledSources(train_clips), training, checkpoint=folder / "train.pt", device=device, log=log)
        save_prior(prior, folder / "prior.pt")
    return single_prior_log_likelihood(prior, eval_clips, cfg.evaluation.batch_size, device)


def separate(cfg: TrialConfig, stages: list[Stage], out_dir: Path, priors: dict[int, Prior], sources,
             sample_rate: int, device, log) -> dict:
    """Annealed Langevin over the stage priors on fixed test mixtures; scores, WAVs and a per-level trace."""
    sep = cfg.separation
    last_prior = priors.get(stages[-1].index) or load_prior(out_dir / f"stage{stages[-1].index}" / "prior.pt")
    conditional = last_prior.noise_conditional
    levels = separation_levels(stages, sep, cfg.schedule.ladder if conditional else None)
    clips = build_clips(cfg.data, "test", sep.length, max_eval_crops=sep.mixtures)
    references = clips.clips(range(min(sep.mixtures, len(clips))))
    mixtures = mix(references)
    k = references.shape[1]
    schedule = LangevinSchedule([s for s, _ in levels], sep.steps_per_level, sep.epsilon, sep.init, sep.rule,
                                sep.likelihood_scale, sep.bound)
    level_priors = [priors[i] if i in priors else load_prior(out_dir / f"stage{i}" / "prior.pt").to(device)
                    for _, i in levels]
    for prior in level_priors:
        prior.eval()
    log(f"--- separation: {len(mixtures)} mixtures × {sep.length} samples, levels "
        f"{[level_name(s) for s, _ in levels]} × {sep.steps_per_level} steps, rule {sep.rule}, init {sep.init}")
    generator = torch.Generator(device=device).manual_seed(sep.seed)
    t0 = time.perf_counter()
    sigmas = [s for s, _ in levels]
    result = annealed_langevin(lambda i, s: level_priors[i].score(s, sigmas[i]), mixtures.to(device),
                               torch.full((k,), 1.0 / k), schedule, generator, keep_levels=True)
    wall = time.perf_counter() - t0
    metrics = {"separation_seconds": wall, "langevin_steps_per_s": result.steps / wall,
               "separation_levels": len(levels), "separation_diverged": float(result.diverged is not None)}
    if result.diverged:
        log(f"separation diverged: {result.diverged}")
        return {**metrics, "separation_error": result.diverged}
    estimates = result.estimates.cpu()
    metrics.update(separation_metrics(estimates, references, mixtures, sources))
    trace = [si_sdr(level, references).mean().item() for level in result.level_estimates]
    plot_level_trace(out_dir / "si_sdr_per_level.png", schedule.sigmas, trace, metrics["si_sdr_mixture"],
                     f"Separation after each level ({cfg.prior.name}, {cfg.separation.rule} rule)")
    write_audio_examples(out_dir / "audio", mixtures, references, estimates, sources, sample_rate, sep.audio_examples)
    return metrics


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def run_trial(cfg: TrialConfig, out_dir: str | Path, report: Report | None = None, log=print) -> dict:
    """Run (or resume) one trial in ``out_dir``; returns the final metrics (last stage + separation)."""
    out_dir = Path(out_dir)
    _claim_folder(cfg, out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    stages = plan_stages(cfg)
    train_clips = build_clips(cfg.data, "train", cfg.training.crop)
    test = build_clips(cfg.data, "test", cfg.evaluation.crop, max_eval_crops=cfg.evaluation.clips)
    eval_clips = test.clips(range(min(cfg.evaluation.clips, len(test))))
    sources = train_clips.sources
    references = None  # (FLAC, background) scores of the eval clips: shared by all stages, built on first use
    priors: dict[int, Prior] = {}
    final = {}
    for stage in stages:
        folder = out_dir / f"stage{stage.index}"
        done = _read_json(folder / "metrics.json")
        if done is not None:
            log(f"--- stage {stage.index}: already done, skipped")
            final = done
            continue
        if references is None:
            references = (flac_log_density(eval_clips, test.sample_rate),
                          background_scores(cfg, out_dir, train_clips, eval_clips, device, log)
                          if cfg.evaluation.background else None)
        metrics, priors[stage.index] = run_stage(cfg, stage, out_dir, train_clips, eval_clips, device, log,
                                                 *references)
        metrics["step"] = sum(s.steps for s in stages[: stage.index + 1])
        if stage is stages[-1] and cfg.separation.enabled:
            metrics.update(separate(cfg, stages, out_dir, priors, sources, test.sample_rate, device, log))
        log(headline(metrics))
        _write_json(folder / "metrics.json", metrics)
        if report is not None:
            report(metrics, folder)
        final = metrics
    _write_json(out_dir / "metrics.json", final)
    return final


HEADLINE = ("auroc", "auroc@0.01", "logp_drop@0.01", "si_sdr", "si_sdri", "sdr")


def headline(metrics: dict) -> str:
    """A stage's key numbers on one line."""
    shown = "  ".join(f"{k}={metrics[k]:.4g}" for k in HEADLINE if isinstance(metrics.get(k), float))
    return f"stage {metrics.get('stage')} (σ={metrics.get('stage_sigma'):g}): {shown}"


def metrics_table(stages: list[dict]) -> str:
    """Every metric (rows) of every stage (columns), for the console."""
    keys = sorted({k for m in stages for k in m})
    lines = [f"{'metric':<28}" + "".join(f"{'stage ' + str(m.get('stage')):>14}" for m in stages)]
    for key in keys:
        cells = [m.get(key, "") for m in stages]
        lines.append(f"{key:<28}" + "".join(f"{c:>14.5g}" if isinstance(c, float) else f"{str(c)[:13]:>14}"
                                            for c in cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run one trial (no Ray, no MLflow): train, evaluate, separate.")
    parser.add_argument("config", type=Path, help="trial YAML (see sweeps/trials/)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; re-running resumes it")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set schedule.sigma=0.077")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(TrialConfig, args.config, args.overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    final = run_trial(cfg, args.out)
    stages = [_read_json(args.out / f"stage{stage.index}" / "metrics.json") for stage in plan_stages(cfg)]
    print("\n" + metrics_table(stages))
    print(f"\nmetrics written to {args.out / 'metrics.json'}; plots, audio and checkpoints under {args.out}")
    return 0 if final else 1


if __name__ == "__main__":
    sys.exit(main())
