"""A trial: train every source prior through a noise schedule, measure each stage, then separate.

    python -m study.trial sweeps/trials/tiny.yaml --out runs/tiny [--store DIR_OR_URI] [--set schedule.sigma=0.077 …]

``run_trial(config, out_dir, report)`` is what the sweep calls: a plain function with no Ray or MLflow in
it. Every stage, evaluation and separation is looked up in the stage store (:mod:`study.store.stage_store`) by its
content key (:mod:`study.trial.stages`) and only computed when the store lacks it; a stage another trial is
training is waited for, not trained twice (:mod:`study.store.leases`). Each stage's metrics are handed to
``report(metrics, stage_dir)``; the last stage's metrics also carry the separation scores. Re-running
therefore resumes: finished stages are reused and an interrupted one continues from its training checkpoint.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import torch
import yaml

from models import Prior
from study.config.reading import ConfigError, bounded, load_config
from study.config.schema import TrialConfig
from study.data import DataError, build_clips
from study.measure.names import headline_metrics
from study.measure.ood import flac_log_density
from study.measure.plots import plot_cross_likelihood, plot_noise_curve, write_matrix_csv
from study.runtime.device import pick_device, use_precision
from study.runtime.precision import resolve_precision
from study.store.leases import LeaseTable
from study.store.stage_store import StageStore, StoreError, dumps_json, write_local
from study.trial.evaluate import evaluate_prior, single_prior_log_likelihood
from study.trial.progress import Progress
from study.trial.separation import Separation
from study.trial.stage_training import StageBuilder, Workspace
from study.trial.stages import Stage, background_key, content_hash, evaluation_key, levels_up_to, plan_stages

Report = Callable[[dict, Path], None]
NOT_SEMANTIC = {"device", "threads", "precision", "name"}  # settings that do not change what is computed


class TrialError(RuntimeError):
    """The output folder holds a trial with a different configuration. (Diverged training raises
    study.trial.train.TrainingError; non-finite scores raise study.trial.evaluate.EvaluationError.)"""


def config_id(cfg: TrialConfig) -> str:
    """Short hash of the settings that change results (dora-style): same config, same id, same folder."""
    return content_hash(cfg.model_dump(mode="json", exclude=NOT_SEMANTIC), length=10)


def _claim_folder(cfg: TrialConfig, out_dir: Path) -> None:
    """Mark ``out_dir`` as this trial's. A folder holding another configuration's results is refused; one
    whose trial failed before any stage finished (say, a wrong data path) is taken over, so the corrected
    command just runs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "config_id"
    results = list(out_dir.glob("stage*/metrics.json"))
    if marker.is_file() and marker.read_text().strip() != config_id(cfg) and results:
        raise TrialError(f"{out_dir} holds results of a trial with a different configuration (id "
                         f"{marker.read_text().strip()}, this one {config_id(cfg)}); choose another output folder")
    write_local(marker, config_id(cfg) + "\n")
    write_local(out_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


class Trial:
    """One trial's view of the stage store: everything it needs is reused when stored, else built once. Its
    stages come from :class:`StageBuilder` (``builder``), its separation from :class:`Separation`
    (``separation``); it keeps the data and evaluates each stage."""

    def __init__(self, cfg: TrialConfig, out_dir: Path, store: StageStore, leases, holder: str, log):
        self.cfg, self.out_dir, self.log = cfg, out_dir, log
        self.device = pick_device(cfg.device)
        self.builder = StageBuilder(cfg, Workspace(store, leases, holder, out_dir, log, self.device),
                                    lambda: self.train_clips)
        self.stages, self.keys = self.builder.stages, self.builder.keys
        self.separation = Separation(self)

    # --- data, built on first use (a trial that reuses everything never decodes training audio) ----------
    @functools.cached_property
    def train_clips(self):
        return self._announce(build_clips(self.cfg.data, "train", self.cfg.training.crop))

    @functools.cached_property
    def test(self):
        return self._announce(build_clips(self.cfg.data, "test", self.cfg.evaluation.crop,
                                          max_eval_crops=self.cfg.evaluation.clips))

    def _announce(self, clips):
        """Say at start-up what the silence policy dropped (stems only; toy clips are never silent)."""
        if hasattr(clips, "dropped"):
            self.log(clips.dropped())
        return clips

    def dropped_metrics(self) -> dict[str, float]:
        """Silent crops skipped, per split and source, for the splits this run has loaded."""
        metrics = {}
        for split in ("train_clips", "test"):
            clips = self.__dict__.get(split)
            if clips is not None and hasattr(clips, "silent_crops"):
                name = split.removesuffix("_clips")
                metrics[f"silent_crops_share/{name}"] = clips.crops_skipped / max(clips.crops_total, 1)
                metrics.update({f"silent_crops/{name}/{s}": float(n) for s, n in clips.silent_crops.items()})
        return metrics

    @functools.cached_property
    def test_clips(self) -> torch.Tensor:
        wanted = self.cfg.evaluation.clips
        if wanted > len(self.test):
            self.log(f"warning: evaluation.clips={wanted} but the test split has {len(self.test)} usable crops; "
                     f"scoring those {len(self.test)}")
        return self.test.clips(range(min(wanted, len(self.test))))

    @functools.cached_property
    def reference_densities(self) -> tuple:
        """(FLAC, background) log-densities of the test clips; shared by all stages, built on first use."""
        background = None
        if self.cfg.evaluation.background:
            prior, _ = self.builder.obtain(background_key(self.cfg), "background prior", self.builder.train_background)
            background = single_prior_log_likelihood(prior, self.test_clips, self.cfg.evaluation.batch_size,
                                                     self.device)
        return flac_log_density(self.test_clips, self.test.sample_rate), background

    def evaluate(self, stage: Stage, prior: Prior, folder: Path) -> dict:
        """The stage's evaluation metrics (stored by evaluation key); its tables and plots land in ``folder``."""
        cfg, sources = self.cfg, self.test.sources
        stored = f"{self.keys[stage.index]}/eval/{evaluation_key(cfg, stage, self.keys[stage.index])}"

        def make(scratch: Path) -> None:
            t0 = time.perf_counter()
            metrics, tables = evaluate_prior(prior, self.test_clips, sources, cfg.evaluation, self.device,
                                             reference_logp=self.reference_densities,
                                             matched_levels=levels_up_to(cfg.schedule.ladder, stage.sigma),
                                             progress=Progress(self.log, f"evaluation of stage {stage.index}"))
            title = f"{cfg.prior.name}, stage {stage.index} (trained at σ={stage.sigma:g})"
            write_matrix_csv(scratch / "cross_likelihood.csv", tables["cross_likelihood"], sources)
            plot_cross_likelihood(scratch / "cross_likelihood.png", tables["cross_likelihood"], sources,
                                  f"Cross-likelihood: {title}")
            plot_noise_curve(scratch / "noise_curve.png", tables["noise_curve"], sources,
                             f"log p under added noise: {title}")
            write_local(scratch / "evaluation.json", dumps_json({**metrics, "eval_seconds": time.perf_counter() - t0}))

        self.builder.folder_once(stored, make, f"evaluation of stage {stage.index}", folder)
        return self.builder.store.read_json(f"{stored}/evaluation.json")

def default_holder() -> str:
    """Who holds a lease: host, process and a random tag (unique even for two trials in one process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_trial(cfg: TrialConfig, out_dir: str | Path, report: Report | None = None, log=print,
              store: StageStore | None = None, leases=None, holder: str | None = None) -> dict:
    """Run (or resume) one trial; returns the final metrics (last stage + separation).

    ``out_dir`` receives this trial's result files (per-stage tables and plots, audio, metrics.json).
    ``store``: the stage store (default ``<out_dir>/stages``); ``leases``: a lease table shared by every
    trial that uses the store (default: one private to this process).
    """
    out_dir = Path(out_dir)
    _claim_folder(cfg, out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    trial = Trial(cfg, out_dir, store or StageStore(out_dir / "stages"), leases or LeaseTable(),
                  holder or default_holder(), log)
    precision = resolve_precision(cfg.precision, trial.device)
    use_precision(precision.used)
    log(precision.describe())
    final = {}
    compute = Compute(trial.device)
    for stage, key in zip(trial.stages, trial.keys):
        prior, record = trial.builder.stage_prior(stage)
        compute.trained(record, cfg.training, len(trial.train_clips.sources))
        folder = out_dir / f"stage{stage.index}"
        metrics = trial.evaluate(stage, prior, folder)
        metrics.update(stage=stage.index, stages=len(trial.stages), stage_sigma=stage.sigma, stage_key=key,
                       stage_reused=float(record["reused"]), stage_wait_seconds=record["wait_seconds"],
                       train_seconds=record["train_seconds"], train_source_samples_per_s=record["train_source_samples_per_s"],
                       step=sum(s.steps for s in trial.stages[: stage.index + 1]))
        if stage is trial.stages[-1] and cfg.separation.enabled:
            metrics.update(trial.separation.separate())
            if cfg.separation.reference_steps:
                metrics.update(trial.separation.supervised_reference())
        metrics.update(trial.dropped_metrics())
        metrics.update(compute.so_far())
        log(headline(metrics, headline_metrics(cfg.evaluation.noise_levels)))
        write_local(folder / "metrics.json", dumps_json(metrics))
        if report is not None:
            report(metrics, folder)
        final = metrics
    write_local(out_dir / "metrics.json", dumps_json(final))
    return final


class Compute:
    """What this trial executed so far (a reused stage costs no training): training steps and source-samples,
    and the process's wall, CPU and (on a CUDA device) GPU seconds since the trial began."""

    def __init__(self, device: torch.device):
        self.gpu = device.type == "cuda"
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.steps = self.source_samples = 0

    def trained(self, record: dict, training, sources: int) -> None:
        if not record["reused"]:
            # a lineage stage counts every length it trained on the way
            steps = record["steps"] - record.get("start_step", 0) + record.get("trained_steps", 0)
            self.steps += steps
            self.source_samples += steps * training.batch_size * training.crop * sources

    def so_far(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        return {"compute_train_steps": float(self.steps), "compute_source_samples": float(self.source_samples),
                "compute_wall_seconds": wall, "compute_cpu_seconds": time.process_time() - self.cpu,
                "compute_gpu_seconds": wall if self.gpu else 0.0}


def headline(metrics: dict, names) -> str:
    """A stage's key numbers (``names``, :func:`study.measure.names.headline_metrics`) on one line."""
    shown = "  ".join(f"{k}={metrics[k]:.4g}" for k in names if isinstance(metrics.get(k), float))
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
    parser = argparse.ArgumentParser(prog="python -m study.trial",
                                     description="Run one trial (no Ray, no MLflow): train, evaluate, separate.")
    parser.add_argument("config", type=Path, help="trial YAML (see sweeps/trials/)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; re-running resumes it")
    parser.add_argument("--store", help="stage store, a folder or a URI such as s3://bucket/stages "
                                        "(default: <out>/stages); trials that share one reuse each other's stages")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set schedule.sigma=0.077")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(TrialConfig, args.config, args.overrides)
        store = StageStore(args.store) if args.store else None
        final = run_trial(cfg, args.out, store=store)
    except (ConfigError, DataError, TrialError, StoreError) as error:  # the user's to fix: one line, no traceback
        print(f"error: {bounded(str(error))}", file=sys.stderr)
        return 2
    stages = [json.loads((args.out / f"stage{stage.index}" / "metrics.json").read_text()) for stage in plan_stages(cfg)]
    print("\n" + metrics_table(stages))
    print(f"\nmetrics written to {args.out / 'metrics.json'}; plots and audio under {args.out}; "
          f"priors in the stage store {store.uri if store else args.out / 'stages'}")
    return 0 if final else 1


if __name__ == "__main__":
    sys.exit(main())
