"""A trial's separation of its test mixtures: annealed Langevin over its stage priors (:mod:`study.trial.separate`),
scored against the truth, beside the same sampler started at the true sources, the likelihood gap, a
separator trained by the priors (:mod:`study.trial.amortised`), a listening excerpt and the supervised
reference; each stored once under its own key and said on the console when it diverged or left its start
unchanged."""
from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Callable

import torch

from models import Prior, build_prior
from study.config.schema import INIT_NAMES
from study.data import DataError, mix, mixing_weights
from study.measure.metrics import mixture_si_sdr, separation_metrics, si_sdr
from study.measure.names import UNCHANGED_BELOW, level_name
from study.measure.plots import plot_level_trace, plot_likelihood_gap, write_audio
from study.runtime.cores import map_batch
from study.runtime.device import autocast
from study.store.stage_store import dumps_json, write_local
from study.trial.progress import Progress
from study.trial.separate import LangevinSchedule, annealed_langevin, gibbs_resample
from study.trial.stages import listening_key, separation_key, separation_levels, supervised_key
from study.trial.separator import Separator
from study.trial.supervised import reference_metrics, train_separator


class Separation:
    """The separation of ``trial`` (a :class:`study.trial.run.Trial`): its stage priors from its builder,
    its test mixtures from its data."""

    def __init__(self, trial):
        self.trial, builder = trial, trial.builder
        self.cfg, self.stages, self.keys, self.out_dir = trial.cfg, builder.stages, builder.keys, builder.out_dir
        self.store, self.log, self.device = builder.store, builder.log, builder.device
        self.load, self.once, self.folder_once = builder.load, builder.once, builder.folder_once
        self.separator = Separator(self)

    @property
    def test(self):
        return self.trial.test

    @property
    def train_clips(self):
        return self.trial.train_clips

    def separate(self) -> dict:
        """Annealed Langevin over the stage priors on fixed test mixtures (stored by separation key)."""
        cfg, sep = self.cfg, self.cfg.separation
        levels = separation_levels(self.stages, sep, self.stages[-1].ladder)
        amortised = self.separator.metrics(levels) if sep.separator.steps else {}
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
        return {**amortised, **metrics, **(self.listening_excerpt(levels) if sep.listen_seconds else {})}

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
        start = self.separator.estimates(levels).to(self.device) if sep.init == "amortised" else None
        t0 = time.perf_counter()
        result = sample(start)
        wall = time.perf_counter() - t0
        metrics = {"separation_seconds": wall, "separation_seconds_per_mixture": wall / len(mixtures),
                   "langevin_steps_per_s": result.steps / wall,
                   "separation_levels": len(levels), "separation_diverged": float(result.diverged is not None)}
        held, traces = self._oracle_start(sample, references, sigmas, metrics) if sep.oracle_start else ({}, {})
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
            metrics.update(self._likelihood_gaps(held, level_priors[-1], sigmas[-1], references, folder))
        if sep.separator.steps:
            metrics.update(self._beside_separator(levels, level_priors[-1], sigmas[-1], estimates, wall))
        if sep.audio_examples:  # the scored crops, joined: each is too short to hear alone
            count = sep.audio_examples
            write_audio(folder / "audio" / "crops", mixtures[:count], references[:count], estimates[:count],
                        clips.sources, clips.sample_rate)
        return metrics

    def _likelihood_gaps(self, held: dict, prior: Prior, sigma: float, references: torch.Tensor, folder: Path) -> dict:
        """``likelihood_gap<suffix>`` of each start's chains (``held``: label -> (chains, metric suffix)), drawn
        in ``likelihood_gap.png``."""
        gaps = {label: self.likelihood_gap(prior, sigma, run.estimates.cpu(), references)
                for label, (run, _) in held.items()}
        plot_likelihood_gap(folder / "likelihood_gap.png", gaps, f"{self.cfg.prior.name}, σ={sigma:.3g}")
        return {f"likelihood_gap{suffix}": gaps[label].mean().item() for label, (_, suffix) in held.items()}

    def _beside_separator(self, levels, prior: Prior, sigma: float, estimates: torch.Tensor, wall: float) -> dict:
        """The separator against the sampler: the likelihood gap between their estimates (under the same prior)
        and the time per mixture, both timed here (one run, one machine)."""
        mixtures = mix(self.separation_sources[1])
        seconds = self.separator.seconds_to_separate(levels, mixtures)
        metrics = {"separation_seconds_per_mixture_amortised": seconds / len(mixtures),
                   "amortised_speedup": wall / seconds}
        if self.cfg.separation.likelihood_gap:
            metrics["likelihood_gap_amortised_vs_langevin"] = self.likelihood_gap(
                prior, sigma, self.separator.estimates(levels), estimates).mean().item()
        return metrics

    def _oracle_start(self, sample, references: torch.Tensor, sigmas, metrics: dict) -> tuple[dict, dict]:
        """The same sampler started at the true sources: its scores into ``metrics``; (label -> (its chains,
        metric suffix), label -> its SI-SDR trace), both empty when it diverged."""
        oracle = sample(references.to(self.device))
        metrics["oracle_start_diverged"] = float(oracle.diverged is not None)
        if oracle.diverged:
            self.log(f"separation started at the true sources diverged: {oracle.diverged}")
            return {}, {}
        # SI-SDR only: the BSS-Eval SDR of separation_metrics is its costly part and is not needed here
        score = si_sdr(oracle.estimates.cpu().double(), references.double()).mean().item()
        baseline = mixture_si_sdr(mix(references), references).mean().item()
        metrics.update(si_sdr_oracle_start=score, si_sdri_oracle_start=score - baseline)
        label = "started at the true sources"
        return {label: (oracle, "_oracle_start")}, {label: self._trace(oracle, references, sigmas,
                                                                        "si_sdr_oracle_trace", metrics)}

    def level_sampler(self, levels: list[tuple[float, int]], mixtures: torch.Tensor,
                      what: str = "separation") -> Callable:
        """``sample(start, seed=None)``: the configured sampler over the priors of ``levels`` ((σ, stage index)
        pairs), from the configured start or from ``start``, with ``separation.seed`` or ``seed``;
        ``sample.priors``, ``sample.schedule``: what it uses."""
        sigmas = [s for s, _ in levels]
        schedule = LangevinSchedule.from_config(sigmas, self.cfg.separation)
        level_priors = self.level_priors(levels)
        score = self.level_score(level_priors, sigmas)

        def sample(start: torch.Tensor | None, seed: int | None = None):
            seed = self.cfg.separation.seed if seed is None else seed  # by default the same for both starts
            generator = torch.Generator(device=self.device).manual_seed(seed)
            label = " from the true sources" if start is not None and self.cfg.separation.init != "amortised" else ""
            result = annealed_langevin(score, mixtures.to(self.device), mixing_weights(level_priors[0].num_sources),
                                       schedule, generator, keep_levels=True, start=start,
                                       progress=Progress(self.log, what + label))
            if self.cfg.separation.gibbs_sweeps and not result.diverged:
                result = gibbs_resample(score, mixtures.to(self.device), mixing_weights(level_priors[0].num_sources),
                                        schedule, generator, result, self.cfg.separation.gibbs_sweeps)
            return result

        sample.priors, sample.schedule = level_priors, schedule
        return sample

    def level_priors(self, levels: list[tuple[float, int]], untrained: bool = False) -> list[Prior]:
        """The prior of each level (one per stage it comes from); ``untrained``: freshly initialised priors of
        the same family and size instead (the control that shows the trained ones do the work)."""
        if not untrained:
            return [self.load(self.keys[i]).eval() for _, i in levels]
        cfg, fresh = self.cfg, {}
        for _, index in levels:
            if index not in fresh:
                torch.manual_seed(cfg.separation.separator.seed + index)
                fresh[index] = build_prior(cfg.prior.name, cfg.prior.preset, num_sources=len(self.test.sources),
                                           **cfg.prior.hparams).to(self.device).eval()
        return [fresh[index] for _, index in levels]

    def level_score(self, level_priors: list[Prior], sigmas: list[float]) -> Callable:
        """``score(i, s, sigma=None)``: level i's prior at σ_i, or at ``sigma`` (a number, or [K]: one level per
        source); the chains (mixtures) are independent, so a share of them goes to each CPU core."""
        def score(i: int, s: torch.Tensor, sigma=None) -> torch.Tensor:
            level = sigmas[i] if sigma is None else sigma
            with autocast(self.device):
                return map_batch(lambda chains: level_priors[i].score(chains, per_chain(level, chains)), s)
        return score

    def level_log_prob(self, level_priors: list[Prior], sigmas: list[float]) -> Callable:
        """``log_prob(i, s, sigma=None)``: log p of each source under level i's prior at σ_i, or at ``sigma``
        (σ-conditional priors) ([B, K]; a score prior's bound)."""
        def log_prob(i: int, s: torch.Tensor, sigma=None) -> torch.Tensor:
            level = sigmas[i] if sigma is None else sigma
            with torch.inference_mode(), autocast(self.device):
                return map_batch(lambda part: level_priors[i].log_prob(part, per_chain(level, part)),
                                 s.to(self.device)).float()
        return log_prob

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
