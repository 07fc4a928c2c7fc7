"""The separator trained by the priors as a stage of a trial: trained once per store under its key
(:func:`study.trial.stages.separator_key`), with its estimates of the trial's test mixtures and its scores on
them (``*_amortised``); the algorithm is :mod:`study.trial.amortised`."""
from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import torch

from study.data import mix, mixing_weights
from study.measure.metrics import mixture_si_sdr, separation_metrics, si_sdr
from study.measure.names import AMORTISED_SCORES
from study.measure.plots import plot_separator_trace
from study.store.stage_store import dumps_json, write_local
from study.trial.amortised import Teacher, build_separator, separate, train_by_priors
from study.trial.stages import separator_key


class Separator:
    """The separator of ``separation`` (a :class:`study.trial.separation.Separation`): its priors, data and
    store are the separation's."""

    def __init__(self, separation):
        self.separation, self.cfg = separation, separation.cfg
        self.store, self.log, self.device, self.out_dir = (separation.store, separation.log, separation.device,
                                                           separation.out_dir)
        self.folder_once = separation.folder_once

    def metrics(self, levels: list[tuple[float, int]]) -> dict:
        """The separator trained by the priors of ``levels`` (:mod:`study.trial.amortised`), stored once under
        its key with its estimates of the test mixtures, and its scores on them (``*_amortised``)."""
        stored = self.folder(levels)
        self.folder_once(stored, functools.partial(self._train, levels), "separator",
                         self.out_dir / "separator")
        return self.store.read_json(f"{stored}/metrics.json")

    def folder(self, levels: list[tuple[float, int]]) -> str:
        return f"separator/{separator_key(self.cfg, levels, self.separation.keys)}"

    def _train(self, levels: list[tuple[float, int]], folder: Path) -> None:
        separation, sep, sigmas = self.separation, self.cfg.separation, [s for s, _ in levels]
        settings, (clips, references) = sep.separator, separation.separation_sources
        mixtures, alphas = mix(references), mixing_weights(len(clips.sources))
        priors = separation.level_priors(levels, untrained=settings.priors == "untrained")
        teacher = Teacher(separation.level_score(priors, sigmas), separation.level_log_prob(priors, sigmas), sigmas,
                          self.cfg.noise_conditional)
        self.log(f"--- separator (ConvTasNet) taught by the {settings.priors} priors: {settings.steps} steps, σ "
                 f"{settings.sigma_high or sigmas[0]:.3g} → {settings.sigma_low:.3g}, {settings.likelihood} likelihood")

        def report(model) -> dict:  # written beside each check, never used to choose
            with torch.inference_mode():
                estimates = separate(model, mixtures.to(self.device), alphas, settings.likelihood).cpu()
            return {"si_sdri": (si_sdr(estimates, references) - mixture_si_sdr(mixtures, references)).mean().item()}

        crops = separation.train_clips.with_length(settings.crop)
        model, record = train_by_priors(teacher, crops, settings, alphas, self.device, self.log, report)
        with torch.inference_mode():
            estimates = separate(model, mixtures.to(self.device), alphas, settings.likelihood).cpu()
        scores = separation_metrics(estimates, references, mixtures, clips.sources)
        metrics = {f"{name}_amortised{se}": scores[f"{name}{se}"] for name in AMORTISED_SCORES for se in ("", "_se")
                   if f"{name}{se}" in scores}
        metrics.update(separator_train_seconds=record.seconds, separator_selected_step=record.selected_step,
                       **{f"si_sdri_amortised_trace/{entry['step']}": entry["si_sdri"] for entry in record.trace})
        if sep.likelihood_gap:
            metrics["likelihood_gap_amortised"] = separation.likelihood_gap(  # under the trained priors
                separation.level_priors(levels[-1:])[0], sigmas[-1], estimates, references).mean().item()
        torch.save(model.state_dict(), folder / "separator.pt")
        torch.save(estimates, folder / "estimates.pt")
        write_local(folder / "training.json",
                    dumps_json({"trace": record.trace, "selected_step": record.selected_step}))
        write_local(folder / "metrics.json", dumps_json(metrics))
        plot_separator_trace(folder / "si_sdri_by_step.png", record.trace, record.selected_step,
                             f"Separator taught by the {settings.priors} priors ({self.cfg.prior.name})")

    def seconds_to_separate(self, levels: list[tuple[float, int]], mixtures: torch.Tensor) -> float:
        """Seconds the stored separator takes to separate ``mixtures`` (the best of three runs)."""
        model = build_separator(len(self.separation.test.sources))
        model.load_state_dict(self.store.read_torch(f"{self.folder(levels)}/separator.pt"))
        model, alphas, best = model.to(self.device).eval(), mixing_weights(len(self.separation.test.sources)), math.inf
        with torch.inference_mode():
            for _ in range(3):
                t0 = time.perf_counter()
                separate(model, mixtures.to(self.device), alphas, self.cfg.separation.separator.likelihood).cpu()
                best = min(best, time.perf_counter() - t0)
        return best

    def estimates(self, levels: list[tuple[float, int]]) -> torch.Tensor:
        """The stored separator's estimates of the test mixtures [B, K, T]."""
        return self.store.read_torch(f"{self.folder(levels)}/estimates.pt")
