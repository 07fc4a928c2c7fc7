"""The metrics' names: their families, their per-source and per-σ forms, and which trials report which.
Torch-free, so that validation can check a sweep's objectives at once."""
from __future__ import annotations

from study.config.reading import did_you_mean


def level_name(sigma: float) -> str:
    """Compact, stable text for a noise level in metric names: 0.01 -> '0.01', 0.0774 -> '0.0774'."""
    return f"{sigma:.4g}"


# Every metric family a trial reports (the README's metrics table), so that a sweep's objectives can be
# checked before it starts: the families with a per-source form ``name/<source>``, those with a per-noise form
# ``name@<σ>`` (σ one of evaluation.noise_levels), and what a family needs in the trial's configuration.
PER_SOURCE = {"auroc", "auroc_complexity", "auroc_ratio", "bits_per_sample", "si_sdr", "sdr"}
AT_NOISE = {"auroc", "logp_drop"}
DENOISING = {"denoise_si_sdr", "noisy_si_sdr"}  # score priors, at each ladder level ≤ the stage's σ
SEPARATION = {"si_sdr", "si_sdri", "si_sdr_mixture", "sdr", "separation_diverged", "separation_seconds",
              "langevin_steps_per_s", "separation_levels", "si_sdr_oracle_start", "si_sdri_oracle_start",
              "oracle_start_diverged", "likelihood_gap", "likelihood_gap_oracle_start", "si_sdr_supervised",
              "si_sdri_supervised", "si_sdr_se", "si_sdri_se", "sdr_se", "separation_moved", "excerpt_diverged",
              "separation_seconds_per_mixture", "likelihood_gap_amortised_vs_langevin"}
# the separator trained by the priors (separation.separator): its scores on the test mixtures, named
# ``<score>_amortised``, and what training it took
AMORTISED_SCORES = ("si_sdr", "si_sdri", "sdr")
AMORTISED = {*(f"{name}_amortised{se}" for name in AMORTISED_SCORES for se in ("", "_se")), "likelihood_gap_amortised",
             "separation_seconds_per_mixture_amortised", "separator_train_seconds", "separator_selected_step",
             "amortised_speedup"}
ORACLE = {"si_sdr_oracle_start", "si_sdri_oracle_start", "oracle_start_diverged", "likelihood_gap_oracle_start"}
COMPUTE = ("compute_train_steps", "compute_source_samples", "compute_wall_seconds", "compute_cpu_seconds",
           "compute_gpu_seconds")  # what a trial executed so far, cumulative over its stages (study.trial.run.Compute)
PLAIN = {*COMPUTE, "auroc", "auroc_complexity", "auroc_ratio", "auroc_matched", "auroc_matched_min", "stage", "stages", "stage_sigma",
         "stage_reused", "stage_wait_seconds", "step", "train_seconds", "train_source_samples_per_s", "eval_seconds",
         *SEPARATION, *AMORTISED}

FAMILIES = PLAIN | PER_SOURCE | AT_NOISE | DENOISING
# A sampler whose chains moved less than this (``separation_moved``: ‖estimates − start‖ / ‖start‖) returned
# its start, so its scores say nothing about the priors. The quickstart's six trials moved 0.07–1.4; a sampler
# with ε too small to move (tests/trial/test_trial.py) moves < 1e-4.
UNCHANGED_BELOW = 1e-2
LIST_HINT = "--list-metrics shows every metric the trials report"


SMOOTHNESS = "logp_drop"  # smoothness: how far log p falls under a little noise


def smoothness_metric(noise_levels) -> str:
    """The smoothness objective of a trial: ``logp_drop@<σ>`` at its smallest evaluation noise level."""
    return f"{SMOOTHNESS}@{level_name(min(noise_levels))}"


def headline_metrics(noise_levels) -> tuple[str, ...]:
    """A stage's key numbers, in the order the console shows them."""
    least = level_name(min(noise_levels))
    return ("auroc", f"auroc@{least}", smoothness_metric(noise_levels), "si_sdr", "si_sdri", "sdr")


def metric_problem(name: str, sources, noise_levels, background: bool, noise_conditional: bool,
                   separation: bool, oracle_start: bool = True, separator: bool = False) -> str | None:
    """Why a trial with these settings never reports ``name`` (None: it does)."""
    family, _, source = name.partition("/")
    family, _, level = family.partition("@")
    if family not in FAMILIES:
        return f"no metric family {family!r}{did_you_mean(family, FAMILIES)} ({LIST_HINT})"
    if family in DENOISING:
        return None if level and not source else f"{family} is reported per ladder level only: {family}@<σ>"
    if source and (family not in PER_SOURCE or source not in sources):
        return (f"{family} has no per-source form" if family not in PER_SOURCE
                else f"no source {source!r}{did_you_mean(source, sources)}; the sources are {list(sources)}")
    if level:
        shown = {level_name(sigma) for sigma in noise_levels}
        if family not in AT_NOISE:
            return f"{family} has no @<σ> form (only {sorted(AT_NOISE)})"
        try:
            known = level_name(float(level)) in shown
        except ValueError:
            known = False
        if not known:
            return f"σ={level} is not one of evaluation.noise_levels {sorted(shown, key=float)}"
    if not source and not level and family not in PLAIN:
        return f"{family} is reported per source only: {family}/<source>"
    if family == "auroc_ratio" and not background:
        return "auroc_ratio needs evaluation.background: true"
    if family.startswith("auroc_matched") and not noise_conditional:
        return f"{family} is reported by σ-conditional priors only"
    if family in SEPARATION and not separation:
        return f"{family} needs separation.enabled: true"
    if family in ORACLE and not oracle_start:
        return f"{family} needs separation.oracle_start: true"
    if (family in AMORTISED or family == "likelihood_gap_amortised_vs_langevin") and not separator:
        return f"{family} needs a separator: separation.separator.steps > 0"
    return None


def reported_metrics(sources, noise_levels, background: bool, noise_conditional: bool, separation: bool,
                     oracle_start: bool = True, separator: bool = False) -> list[str]:
    """Every metric a trial with these settings reports, in the forms an objective may take (a denoising
    family's ladder level shown as ``<σ>``)."""
    levels = [level_name(sigma) for sigma in sorted(noise_levels)]
    names = [*sorted(PLAIN), *(f"{family}/{source}" for family in sorted(PER_SOURCE) for source in sources),
             *(f"{family}@{level}" for family in sorted(AT_NOISE) for level in levels)]
    settings = (sources, noise_levels, background, noise_conditional, separation, oracle_start, separator)
    return [name for name in names if metric_problem(name, *settings) is None] + [
        f"{family}@<σ>" for family in sorted(DENOISING)]
