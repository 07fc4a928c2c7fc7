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
import io
import json
import math
import os
import socket
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
import yaml

from models import Prior, build_prior, prior_checkpoint, prior_from_checkpoint
from study.config.schema import INIT_NAMES, TrialConfig
from study.config.reading import ConfigError, bounded, load_config
from study.runtime.cores import map_batch
from study.data import DataError, build_clips, mix, mixing_weights
from study.trial.evaluate import evaluate_prior, single_prior_log_likelihood
from study.store.leases import Heartbeat, LeaseTable
from study.trial.lineage import LINEAGES, STATE, announce, announced, same_training
from study.measure.names import UNCHANGED_BELOW, headline_metrics, level_name
from study.measure.metrics import mixture_si_sdr, separation_metrics, si_sdr
from study.measure.ood import PooledSources, flac_log_density
from study.measure.plots import (plot_cross_likelihood, plot_level_trace, plot_likelihood_gap, plot_noise_curve,
                         write_audio, write_matrix_csv)
from study.runtime.precision import resolve_precision
from study.runtime.device import autocast, pick_device, use_precision
from study.trial.separate import LangevinSchedule, annealed_langevin
from study.trial.stages import (Stage, background_key, background_stage, background_training, content_hash, evaluation_key,
                          length_key, levels_up_to, listening_key, plan_stages, separation_key, separation_levels,
                          stage_keys, stage_lineages, stage_training, supervised_key)
from study.store.stage_store import StageStore, StoreError, dumps_json, write_local
from study.trial.supervised import reference_metrics, train_separator
from study.trial.train import load_checkpoint, train

Report = Callable[[dict, Path], None]
NOT_SEMANTIC = {"device", "threads", "precision", "name"}  # settings that do not change what is computed
WAIT_POLL_SECONDS = 1.0


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
    """One trial's view of the stage store: everything it needs is reused when stored, else built once."""

    def __init__(self, cfg: TrialConfig, out_dir: Path, store: StageStore, leases, holder: str, log):
        self.cfg, self.out_dir, self.store, self.leases, self.holder, self.log = cfg, out_dir, store, leases, holder, log
        self.device = pick_device(cfg.device)
        self.stages = plan_stages(cfg)
        self.keys = stage_keys(cfg, self.stages)
        self.lineages = stage_lineages(cfg, self.stages, self.keys)
        self.priors: dict[str, Prior] = {}  # by stage key, kept for separation

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
            prior, _ = self.obtain(background_key(self.cfg), "background prior", self._train_background)
            background = single_prior_log_likelihood(prior, self.test_clips, self.cfg.evaluation.batch_size,
                                                     self.device)
        return flac_log_density(self.test_clips, self.test.sample_rate), background

    # --- build once -------------------------------------------------------------------------------------
    def once(self, folder: str, build: Callable[[], None], waiting: str, lease: str | None = None
             ) -> tuple[bool, float]:
        """Make sure ``folder`` is complete in the store: build it under a lease (``lease``, default the folder's
        own) unless it is, or another trial is building it (then wait). Returns (reused, seconds spent waiting).
        A complete folder whose files no longer match their digests is set aside and built again."""
        lease = lease or folder
        if self.store.is_complete(folder):
            damage = self.store.damage(folder)
            if damage is None:
                return True, 0.0
            self.log(f"warning: {damage}; set aside to {self.store.set_aside(folder)} and built again")
        t0, announced = time.perf_counter(), False
        while True:
            granted, holder = self.leases.claim(lease, self.holder)
            if granted:
                break
            if not announced:
                self.log(f"{waiting}: trial {holder} is building it; waiting (store {folder})")
                announced = True
            time.sleep(WAIT_POLL_SECONDS)
            if self.store.is_complete(folder):
                return True, time.perf_counter() - t0
        waited = time.perf_counter() - t0 if announced else 0.0
        with Heartbeat(self.leases, lease, self.holder, self.log):
            if self.store.is_complete(folder):  # finished between our check and our claim
                return True, waited
            build()
            self.store.mark_complete(folder)  # last: readers trust nothing before it
        return False, waited

    def obtain(self, key: str, what: str, build: Callable[[], None], lease: str | None = None) -> tuple[Prior, dict]:
        """A trained prior from the store (training it once if needed) and its training record."""
        reused, waited = self.once(key, build, what, lease)
        try:
            prior = self.load(key)
        except StoreError as error:  # a stage sealed before digests were kept, damaged since
            if not reused:
                raise
            self.log(f"warning: {error}; set aside to {self.store.set_aside(key)} and built again")
            reused, waited = self.once(key, build, what, lease)
            prior = self.load(key)
        record = {**self.store.read_json(f"{key}/training.json"), "reused": reused, "wait_seconds": waited}
        return prior, record

    def load(self, key: str) -> Prior:
        """A finished prior, read from the store once per trial."""
        if key not in self.priors:
            self.priors[key] = prior_from_checkpoint(self.store.read_torch(f"{key}/prior.pt")).to(self.device)
        return self.priors[key]

    def train_into_store(self, key: str, prior: Prior, data, training, stage: Stage, start: bytes | None = None,
                         record: dict | None = None) -> int:
        """Train ``prior`` into ``<key>/``: resumes from the stored mid-stage checkpoint (else from the
        checkpoint ``start``, a shorter stage of its lineage), uploads each new one, then writes the prior and a
        training record, with ``record`` added (an attempt record marks every start). A lineage stage keeps its
        final checkpoint as ``state.pt``. -> the steps trained here."""
        local = self.out_dir / "checkpoints" / key
        local.mkdir(parents=True, exist_ok=True)
        checkpoint = local / "train.pt"
        saved = self.store.read_bytes(f"{key}/train.pt")
        saved = start if saved is None else saved
        if saved is not None:
            write_local(checkpoint, saved)
        elif checkpoint.exists():
            checkpoint.unlink()  # a local leftover the store never received is not trusted
        start = load_checkpoint(checkpoint)["step"] if saved is not None else 0
        self.store.write_json(f"{key}/attempts/{time.time():.3f}-{uuid.uuid4().hex[:6]}.json",
                              {"holder": self.holder, "pid": os.getpid(), "start_step": start,
                               "steps": training.steps})
        trained = train(prior, data, training, stage.train_sigma, ladder=stage.ladder, checkpoint=checkpoint,
                        device=self.device, log=self.log,
                        on_checkpoint=lambda path: self.store.write_bytes(f"{key}/train.pt", path.read_bytes()))
        self.store.write_torch(f"{key}/prior.pt", prior_checkpoint(prior))
        self.store.write_json(f"{key}/training.json", {
            "holder": self.holder, "steps": training.steps, "start_step": start, "train_seconds": trained.wall_seconds,
            "train_source_samples_per_s": trained.source_samples_per_second, "training": training.model_dump(mode="json"),
            "sigma": stage.sigma, **(record or {})})
        if training.lr_horizon is not None:  # a longer stage of the lineage continues from here
            self.store.write_bytes(f"{key}/{STATE}", checkpoint.read_bytes())
        self.store.delete(f"{key}/train.pt")  # the finished prior is what later stages start from
        return training.steps - start

    def _train_background(self) -> None:
        cfg = self.cfg
        self.log(f"--- background prior: {cfg.prior.name} on all sources pooled, "
                 f"{background_training(cfg).steps} clean steps")
        torch.manual_seed(cfg.training.seed)
        prior = build_prior(cfg.prior.name, cfg.prior.preset, num_sources=1, **cfg.prior.hparams)
        self.train_into_store(background_key(cfg), prior, PooledSources(self.train_clips), background_training(cfg),
                              background_stage(cfg))

    # --- stages -----------------------------------------------------------------------------------------
    def stage_prior(self, stage: Stage) -> tuple[Prior, dict]:
        key, lineage = self.keys[stage.index], self.lineages[stage.index]
        origin = "from scratch" if stage.init_from is None else f"from stage {stage.init_from}"
        title = f"--- stage {stage.index}: σ={stage.sigma:g}, {stage.steps} steps"

        def build() -> None:
            self.log(f"{title}, {origin} (store {key})")
            if lineage is not None:
                self.train_lineage(stage, lineage)
            else:
                self.train_into_store(key, self.initial_prior(stage), self.train_clips, stage_training(self.cfg, stage),
                                      stage)

        if lineage is not None:
            announce(self.store, lineage, stage.steps)
        prior, record = self.obtain(key, title, build, None if lineage is None else f"{LINEAGES}-{lineage}")
        if record["reused"]:
            self.log(f"{title}, {origin}: reused (store {key})")
        return prior, record

    def initial_prior(self, stage: Stage) -> Prior:
        """The weights a stage starts from: its parent stage's, or a fresh prior."""
        if stage.init_from is not None:
            return prior_from_checkpoint(self.store.read_torch(f"{self.keys[stage.init_from]}/prior.pt"))
        torch.manual_seed(self.cfg.training.seed)
        return build_prior(self.cfg.prior.name, self.cfg.prior.preset, num_sources=len(self.train_clips.sources),
                           **self.cfg.prior.hparams)

    def train_lineage(self, stage: Stage, lineage: str) -> None:
        """Train ``stage`` as the next length of its lineage (:mod:`study.trial.lineage`), under the lineage's lease:
        continue from its longest sealed shorter length, and seal every announced length on the way."""
        def length(steps: int) -> tuple[str, object]:
            return length_key(self.cfg, stage, self.keys, steps), stage_training(self.cfg, replace(stage, steps=steps))

        shorter = [steps for steps in announced(self.store, lineage) if steps < stage.steps]
        start, origin, done = None, None, 0
        for steps in reversed(shorter):
            start = self.sealed_state(*length(steps), steps)
            if start is not None:
                origin, done = length(steps)[0], steps
                self.log(f"continuing the {steps}-step stage of this lineage (store {origin})")
                break
        trained = 0
        for steps in [s for s in shorter if s > done] + [stage.steps]:
            key, training = length(steps)
            if steps != stage.steps and self.store.is_complete(key):  # sealed, but not fit to continue from
                self.log(f"warning: {key} cannot be continued from; set aside to {self.store.set_aside(key)}")
            prior = self.initial_prior(stage)
            trained += self.train_into_store(key, prior, self.train_clips, training, stage, start,
                                             {"continued_from": origin, "trained_steps": trained})
            start, origin = self.store.read_bytes(f"{key}/{STATE}"), key
            if steps != stage.steps:
                self.store.mark_complete(key)
                self.log(f"sealed the {steps}-step stage of this lineage on the way (store {key})")

    def sealed_state(self, key: str, training, steps: int) -> bytes | None:
        """The final checkpoint of a sealed lineage stage, if it can be continued from: its files have their
        sealed digests and it records ``training`` at ``steps``. Otherwise None (a damaged one set aside)."""
        if not self.store.is_complete(key):
            return None
        damage = self.store.damage(key)
        if damage is not None:
            self.log(f"warning: {damage}; set aside to {self.store.set_aside(key)}")
            return None
        data = self.store.read_bytes(f"{key}/{STATE}")
        record = None if data is None else torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if record is None or record.get("step") != steps or not same_training(record.get("training", {}), training):
            self.log(f"warning: {key} has no final state for {steps} steps of these settings; not continued from")
            return None
        return data

    def folder_once(self, stored: str, make: Callable[[Path], None], what: str, into: Path) -> None:
        """The result folder ``stored``, made once per store (``make`` fills a local scratch folder, which is
        then uploaded; see :meth:`once`), brought into ``into``."""
        def build() -> None:
            scratch = self.out_dir / "scratch" / stored
            scratch.mkdir(parents=True, exist_ok=True)
            make(scratch)
            self.store.put_folder(stored, scratch)

        self.once(stored, build, what)
        self.store.get_folder(stored, into)

    def evaluate(self, stage: Stage, prior: Prior, folder: Path) -> dict:
        """The stage's evaluation metrics (stored by evaluation key); its tables and plots land in ``folder``."""
        cfg, sources = self.cfg, self.test.sources
        stored = f"{self.keys[stage.index]}/eval/{evaluation_key(cfg, stage, self.keys[stage.index])}"

        def make(scratch: Path) -> None:
            t0 = time.perf_counter()
            flac_logp, background_logp = self.reference_densities
            metrics, tables = evaluate_prior(prior, self.test_clips, sources, cfg.evaluation, self.device,
                                             flac_logp=flac_logp, background_logp=background_logp,
                                             matched_levels=levels_up_to(cfg.schedule.ladder, stage.sigma),
                                             progress=Progress(self.log, f"evaluation of stage {stage.index}"))
            title = f"{cfg.prior.name}, stage {stage.index} (trained at σ={stage.sigma:g})"
            write_matrix_csv(scratch / "cross_likelihood.csv", tables["cross_likelihood"], sources)
            plot_cross_likelihood(scratch / "cross_likelihood.png", tables["cross_likelihood"], sources,
                                  f"Cross-likelihood: {title}")
            plot_noise_curve(scratch / "noise_curve.png", tables["noise_curve"], sources,
                             f"log p under added noise: {title}")
            write_local(scratch / "evaluation.json", dumps_json({**metrics, "eval_seconds": time.perf_counter() - t0}))

        self.folder_once(stored, make, f"evaluation of stage {stage.index}", folder)
        return self.store.read_json(f"{stored}/evaluation.json")

    def separate(self) -> dict:
        """Annealed Langevin over the stage priors on fixed test mixtures (stored by separation key)."""
        cfg, sep = self.cfg, self.cfg.separation
        levels = separation_levels(self.stages, sep, self.stages[-1].ladder)
        stored = f"{self.keys[-1]}/separation/{separation_key(cfg, levels, self.keys)}"

        def make(scratch: Path) -> None:
            write_local(scratch / "separation.json", dumps_json(self._run_langevin(levels, scratch)))

        self.folder_once(stored, make, "separation", self.out_dir / "separation")
        metrics = self.store.read_json(f"{stored}/separation.json")
        if metrics.get("separation_error"):  # said on every run, a stored result's included
            self.log(f"warning: the separation diverged: no scores ({metrics['separation_error']}); "
                     "see separation.bound and separation.epsilon")
        if metrics.get("separation_unchanged"):
            self.log(f"warning: {metrics['separation_unchanged']}")
        return {**metrics, **(self.listening_excerpt(levels) if sep.listen_seconds else {})}

    def listening_excerpt(self, levels: list[tuple[float, int]]) -> dict:
        """``separation.listen_seconds`` of one test mixture, separated as such: cut into consecutive crops of
        ``separation.length`` (one batch of the same sampler) and joined back, written beside the scored
        crops' audio (separation/audio/excerpt). Stored under its own key. Its metric ``excerpt_diverged``
        (and, when it did, the tag ``study.excerpt_error`` and a console warning) says whether it has audio."""
        stored = f"{self.keys[-1]}/listening/{listening_key(self.cfg, levels, self.keys)}"
        folder = self.out_dir / "separation" / "audio" / "excerpt"
        self.folder_once(stored, functools.partial(self._separate_excerpt, levels), "listening excerpt", folder)
        if not (folder / "diverged.txt").exists():
            return {"excerpt_diverged": 0.0}
        reason = (folder / "diverged.txt").read_text().strip()
        self.log(f"warning: the listening excerpt diverged: {reason}")
        return {"excerpt_diverged": 1.0, "excerpt_error": reason}

    def _separate_excerpt(self, levels: list[tuple[float, int]], folder: Path) -> None:
        sep, rate = self.cfg.separation, self.test.sample_rate
        crops = math.ceil(sep.listen_seconds * rate / sep.length)
        try:
            sources = self.test.with_length(crops * sep.length, max_eval_crops=1).clips([0])[0]  # [K, crops·L]
        except (DataError, IndexError) as error:
            write_local(folder / "none.txt", f"no {sep.listen_seconds:g} s excerpt of the test split: {error}\n")
            return
        references = sources.reshape(len(sources), crops, sep.length).transpose(0, 1)  # [crops, K, L], in order
        self.log(f"--- listening excerpt: {crops * sep.length / rate:.2f} s of one test mixture as {crops} "
                 f"consecutive crops (no metrics)")
        result = self.level_sampler(levels, mix(references), "listening excerpt")(None)
        if result.diverged:
            write_local(folder / "diverged.txt", f"no audio: the separation diverged ({result.diverged}); "
                                                 "see separation.bound and separation.epsilon\n")
            return
        estimates = result.estimates.cpu().transpose(0, 1).reshape(len(sources), -1)  # joined back: [K, crops·L]
        write_audio(folder, mix(sources)[None], sources[None], estimates[None], self.test.sources, rate)

    @functools.cached_property
    def separation_sources(self):
        """(clips, the true sources of the separation's test mixtures [B, K, T])."""
        sep = self.cfg.separation
        clips = self.test.with_length(sep.length, max_eval_crops=sep.mixtures)  # the split is loaded once
        return clips, clips.clips(range(min(sep.mixtures, len(clips))))

    def supervised_reference(self) -> dict:
        """A supervised separator's scores on the same test mixtures (trained once per store)."""
        sep = self.cfg.separation
        stored = f"supervised/{supervised_key(self.cfg)}"

        def build() -> None:
            self.log(f"--- supervised reference: ConvTasNet, {sep.reference_steps} steps (store {stored})")
            model = train_separator(self.train_clips, sep, self.device, self.log)
            self.store.write_json(f"{stored}/metrics.json",
                                  reference_metrics(model, self.separation_sources[1], self.device))

        self.once(stored, build, "supervised reference")
        return self.store.read_json(f"{stored}/metrics.json")

    def _run_langevin(self, levels: list[tuple[float, int]], folder: Path) -> dict:
        cfg, sep = self.cfg, self.cfg.separation
        clips, references = self.separation_sources
        mixtures = mix(references)
        sigmas = [s for s, _ in levels]
        sample = self.level_sampler(levels, mixtures)
        level_priors, schedule = sample.priors, sample.schedule
        self.log(f"--- separation: {len(mixtures)} mixtures × {sep.length} samples, {len(levels)} levels "
                 f"{level_name(sigmas[0])} → {level_name(sigmas[-1])} × {sep.steps_per_level} steps "
                 f"(×{sep.steps_growth:g} by the last), rule {sep.rule}, init {sep.init}, predictor {sep.predictor}"
                 + (", then again from the true sources" if sep.oracle_start else ""))
        t0 = time.perf_counter()
        result = sample(None)
        wall = time.perf_counter() - t0
        metrics = {"separation_seconds": wall, "langevin_steps_per_s": result.steps / wall,
                   "separation_levels": len(levels), "separation_diverged": float(result.diverged is not None)}
        held, traces = {}, {}  # label -> (the chains that ended without diverging, metric suffix); SI-SDR traces
        if sep.oracle_start:
            oracle = sample(references.to(self.device))
            metrics["oracle_start_diverged"] = float(oracle.diverged is not None)
            if oracle.diverged:
                self.log(f"separation started at the true sources diverged: {oracle.diverged}")
            else:
                # SI-SDR only: the BSS-Eval SDR of separation_metrics is its costly part and is not needed here
                score = si_sdr(oracle.estimates.cpu().double(), references.double()).mean().item()
                baseline = mixture_si_sdr(mixtures, references).mean().item()
                metrics.update(si_sdr_oracle_start=score, si_sdri_oracle_start=score - baseline)
                held["started at the true sources"] = (oracle, "_oracle_start")
                traces = {"started at the true sources": self._trace(oracle, references, sigmas,
                                                                     "si_sdr_oracle_trace", metrics)}
        if result.diverged:
            (folder / "audio").mkdir(parents=True, exist_ok=True)  # where the audio would be, say why there is none
            write_local(folder / "audio" / "diverged.txt", f"no audio: the separation diverged ({result.diverged}); "
                                                           f"see separation.bound and separation.epsilon\n")
            return {**metrics, "separation_error": result.diverged}
        estimates = result.estimates.cpu()
        metrics.update(separation_metrics(estimates, references, mixtures, clips.sources),
                       separation_moved=result.moved)
        if result.moved < UNCHANGED_BELOW:
            metrics["separation_unchanged"] = (
                f"the sampler left its start ({INIT_NAMES[sep.init]}) almost unchanged (relative change "
                f"{result.moved:.2g}): its scores are the start's, not the priors'; raise separation.epsilon or "
                "steps_per_level")
        label = f"started at {INIT_NAMES[sep.init]}"
        held = {label: (result, ""), **held}
        traces = {label: self._trace(result, references, sigmas, "si_sdr_trace", metrics), **traces}
        plot_level_trace(folder / "si_sdr_per_level.png", schedule.sigmas, traces, metrics["si_sdr_mixture"],
                         f"Separation after each level ({cfg.prior.name}, {sep.rule} rule)")
        if sep.likelihood_gap:
            gaps = {label: self.likelihood_gap(level_priors[-1], sigmas[-1], run.estimates.cpu(), references)
                    for label, (run, _) in held.items()}
            metrics.update({f"likelihood_gap{suffix}": gaps[label].mean().item() for label, (_, suffix) in held.items()})
            plot_likelihood_gap(folder / "likelihood_gap.png", gaps, f"{cfg.prior.name}, σ={sigmas[-1]:.3g}")
        if sep.audio_examples:  # the scored crops, joined: each is too short to hear alone
            count = sep.audio_examples
            write_audio(folder / "audio" / "crops", mixtures[:count], references[:count], estimates[:count],
                        clips.sources, clips.sample_rate)
        return metrics

    def level_sampler(self, levels: list[tuple[float, int]], mixtures: torch.Tensor,
                      what: str = "separation") -> Callable:
        """``sample(start, seed=None)``: the configured sampler over the priors of ``levels`` ((σ, stage index)
        pairs), from the configured start or from ``start``, with ``separation.seed`` or ``seed``;
        ``sample.priors``, ``sample.schedule``: what it uses."""
        sigmas = [s for s, _ in levels]
        schedule = LangevinSchedule.from_config(sigmas, self.cfg.separation)
        level_priors = [self.load(self.keys[i]).eval() for _, i in levels]

        def score(i: int, s: torch.Tensor, sigma=None) -> torch.Tensor:
            """Level i's prior at σ_i, or at ``sigma`` (a number, or [K]: one level per source)."""
            level = sigmas[i] if sigma is None else sigma
            with autocast(self.device):  # the chains (mixtures) are independent: a share of them per CPU core
                return map_batch(lambda chains: level_priors[i].score(chains, per_chain(level, chains)), s)

        def sample(start: torch.Tensor | None, seed: int | None = None):
            seed = self.cfg.separation.seed if seed is None else seed  # by default the same for both starts
            generator = torch.Generator(device=self.device).manual_seed(seed)
            return annealed_langevin(score, mixtures.to(self.device), mixing_weights(level_priors[0].num_sources),
                                     schedule, generator, keep_levels=True, start=start,
                                     progress=Progress(self.log, what + (" from the true sources" if start is not None
                                                                         else "")))

        sample.priors, sample.schedule = level_priors, schedule
        return sample

    def likelihood_gap(self, prior: Prior, sigma: float, estimates: torch.Tensor, references: torch.Tensor):
        """Σ_k log p_k(estimate) − Σ_k log p_k(truth) per mixture, in nats, under the last level's prior at its σ
        (a score prior's bound): negative, the sampler missed what the priors prefer; near zero or positive
        with a poor SI-SDR, the priors themselves prefer the wrong answer. [mixtures]."""
        with torch.inference_mode(), autocast(self.device):
            def total(x: torch.Tensor) -> torch.Tensor:
                return map_batch(lambda part: prior.log_prob(part, per_chain(sigma, part)), x.to(self.device))
            return (total(estimates).sum(1) - total(references).sum(1)).double().cpu()

    @staticmethod
    def _trace(result, references: torch.Tensor, sigmas, name: str, metrics: dict) -> list[float]:
        """Mean SI-SDR after each level, also logged as ``<name>/<σ>`` metrics."""
        trace = [si_sdr(level, references).mean().item() for level in result.level_estimates]
        metrics.update({f"{name}/{level_name(sigma)}": value for sigma, value in zip(sigmas, trace)})
        return trace


def per_chain(sigma, chains: torch.Tensor):
    """A noise level for a prior's score or log p: a number as it is, one per source ([K]) for every chain."""
    if isinstance(sigma, torch.Tensor):
        return sigma.to(chains).expand(len(chains), -1)
    return sigma


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
        prior, record = trial.stage_prior(stage)
        compute.trained(record, cfg.training, len(trial.train_clips.sources))
        folder = out_dir / f"stage{stage.index}"
        metrics = trial.evaluate(stage, prior, folder)
        metrics.update(stage=stage.index, stages=len(trial.stages), stage_sigma=stage.sigma, stage_key=key,
                       stage_reused=float(record["reused"]), stage_wait_seconds=record["wait_seconds"],
                       train_seconds=record["train_seconds"], train_source_samples_per_s=record["train_source_samples_per_s"],
                       step=sum(s.steps for s in trial.stages[: stage.index + 1]))
        if stage is trial.stages[-1] and cfg.separation.enabled:
            metrics.update(trial.separate())
            if cfg.separation.reference_steps:
                metrics.update(trial.supervised_reference())
        metrics.update(trial.dropped_metrics())
        metrics.update(compute.so_far())
        log(headline(metrics, headline_metrics(cfg.evaluation.noise_levels)))
        write_local(folder / "metrics.json", dumps_json(metrics))
        if report is not None:
            report(metrics, folder)
        final = metrics
    write_local(out_dir / "metrics.json", dumps_json(final))
    return final


class Progress:
    """``progress(done, total, what)`` for long work: one line at most every ``every`` seconds, with an ETA."""

    def __init__(self, log, title: str, every: float = 15.0):
        self.log, self.title, self.every = log, title, every
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.perf_counter()
        if now - self.last < self.every or done >= total:
            return
        self.last = now
        left = (now - self.start) / done * (total - done)
        self.log(f"{self.title}: {done}/{total} ({what}), {now - self.start:.0f} s so far, about {left:.0f} s left")


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
