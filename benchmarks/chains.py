"""Several separation chains per mixture: does ranking them by the priors' own bound pick better estimates?

Runs a trial's configured sampler ``--chains`` times (separation seeds 0, 1, …) on its test mixtures, with the
trial's trained priors (from ``--store``; trained there first if missing), and reports per chain the mean
SI-SDRi and likelihood gap, then the SI-SDRi of the chain each mixture's bound prefers against the mean
chain and the best chain chosen with the truth. Chains that all land in one mode (a spread near zero) say
the sampler, not the selection, has to explore.

    python -m benchmarks.chains sweeps/trials/training_length_4000.yaml --store runs/ray/stages --chains 4 \\
        --set separation.mixtures=16
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from study.config.schema import TrialConfig
from study.config.reading import load_config
from study.data import mix
from study.store.leases import LeaseTable
from study.measure.metrics import mixture_si_sdr, si_sdr
from study.runtime.precision import resolve_precision
from study.runtime.device import use_precision
from study.trial.stages import separation_levels
from study.store.stage_store import StageStore
from study.trial.run import Trial, default_holder

from .common import machine


def rank_chains(gain: torch.Tensor, gap: torch.Tensor) -> dict:
    """``gain``, ``gap``: [chains, mixtures] SI-SDRi and likelihood gap -> the selection figures."""
    chosen = gain.gather(0, gap.argmax(0, keepdim=True))
    pairs = torch.stack([gain.flatten(), gap.flatten()]).double()
    return {"mean_chain_si_sdri": gain.mean().item(), "chosen_by_bound_si_sdri": chosen.mean().item(),
            "best_with_truth_si_sdri": gain.max(0).values.mean().item(),
            "spread_across_chains_db": (gain.max(0).values - gain.min(0).values).mean().item(),
            "corr_si_sdri_gap": torch.corrcoef(pairs)[0, 1].item()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="trial YAML")
    parser.add_argument("--store", required=True, help="the stage store holding (or to hold) its priors")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg = load_config(TrialConfig, args.config, args.overrides)
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    with tempfile.TemporaryDirectory() as out:
        trial = Trial(cfg, Path(out), StageStore(args.store), LeaseTable(), default_holder(), print)
        use_precision(resolve_precision(cfg.precision, trial.device).used)
        for stage in trial.stages:
            trial.builder.stage_prior(stage)
        levels = separation_levels(trial.stages, cfg.separation, trial.stages[-1].ladder)
        _, references = trial.separation.separation_sources
        mixtures = mix(references)
        baseline = mixture_si_sdr(mixtures, references).double().mean(-1)  # [mixtures]
        sample = trial.separation.level_sampler(levels, mixtures)
        gains, gaps = [], []
        for seed in range(args.chains):
            t0 = time.perf_counter()
            estimates = sample(None, seed=seed).estimates.cpu()
            gains.append(si_sdr(estimates.double(), references.double()).mean(-1) - baseline)
            gaps.append(trial.separation.likelihood_gap(sample.priors[-1], levels[-1][0], estimates, references))
            print(f"chain {seed}: SI-SDRi {gains[-1].mean():+.2f} dB, likelihood gap {gaps[-1].mean():.0f} nats "
                  f"per mixture ({time.perf_counter() - t0:.0f} s)", flush=True)
    result = {"machine": machine(), "config": str(args.config), "overrides": args.overrides,
              "chains": args.chains, "mixtures": len(mixtures),
              **rank_chains(torch.stack(gains), torch.stack(gaps))}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
