"""Validated configuration of a trial (pydantic). Every section forbids unknown keys, so a typo is an error
that names its field path instead of a silently ignored setting. Types are strict: a boolean is not an
integer, ``"8"`` is not a number, and floats must be finite (``.inf`` and ``.nan`` are rejected)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.catalog import PRESETS, PRIOR_NAMES, prior_defaults, prior_setting, trained_by
from models.settings import LOWEST_SIGMA

SIGMA_TOLERANCE = 1e-6  # relative: ladder levels computed in floating point compare equal to σ

# Names that become file or folder names: no separators, no leading dot, so never "..", "/" or "~".
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, strict=True, allow_inf_nan=False)


class DataConfig(Section):
    """Where clips come from. ``toy`` generates oscillators; ``stems`` reads ``root/<split>/<track>/<source>.wav``
    (MUSDB18-HQ); ``slakh`` reads Slakh2100's ``root/<split>/<Track>/stems/*.flac`` and sums each instrument
    class's stems into a source (:mod:`study.data.layouts`)."""

    kind: Literal["toy", "stems", "slakh"] = "toy"
    sources: list[Name] | None = Field(None, min_length=1)  # default: the kind's standard sources
    seed: int = 0
    # How every source is scaled before noise is added: "rms" (unit RMS over its audible part, so σ is
    # noise relative to the source on every dataset) or "peak" (peak 1, the published protocol's absolute σ)
    normalise: Literal["rms", "peak"] = "rms"
    # toy
    train_size: int = Field(5000, ge=1)
    test_size: int = Field(1500, ge=1)
    train_amplitude: float | None = None  # None: A ~ U[0.8, 1) per clip (paper)
    eval_amplitude: float | None = 1.0  # paper evaluated at A = 1
    # stems
    root: Path | None = Field(None, strict=False)  # a string in YAML
    train_split: Name = "train"
    test_split: Name = "test"
    sample_rate: int | None = Field(None, ge=1000)  # None: the stem files' own rate (an error if they disagree)
    channel: Literal["left", "mean"] = "left"
    silence_db: float | None = -40.0
    cache_dir: Path | None = Field(None, strict=False)

    @model_validator(mode="after")
    def _stems_need_root(self):
        if self.kind != "toy" and self.root is None:
            raise ValueError(f"data.root is required when data.kind is {self.kind!r}")
        return self


class PriorConfig(Section):
    """Which prior and how big: a registry name, an optional named preset, and keyword overrides."""

    name: str = "flowavenet"
    preset: str | None = "small"
    hparams: dict[str, int | float | str | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self):
        if self.name not in PRIOR_NAMES:
            raise ValueError(f"unknown prior {self.name!r}; choose one of {sorted(PRIOR_NAMES)}")
        if self.preset is not None and self.preset not in PRESETS[self.name]:
            raise ValueError(f"unknown preset {self.preset!r} for {self.name}; choose one of {sorted(PRESETS[self.name])}")
        check_hparams(self.name, self.hparams)
        return self


def check_hparams(name: str, hparams: dict) -> None:
    """Check ``hparams`` against the prior's settings, so a wrong keyword fails validation (and ``--dry-run``)
    rather than the trial: every key must be a setting, of the type of its default."""
    accepted = {key: default for key, default in prior_defaults(name).items() if key != "num_sources"}  # the data's
    for key, value in hparams.items():
        if key not in accepted:
            raise ValueError(f"prior.hparams.{key}: {name} takes no such parameter; it takes {sorted(accepted)}")
        default = accepted[key]
        expected = type(default)
        if expected is bool or isinstance(value, bool):  # a bool is never an int here, nor an int a bool
            fits = expected is bool and isinstance(value, bool)
        else:
            fits = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not fits:
            raise ValueError(f"prior.hparams.{key}: {name} expects {expected.__name__}, got {value!r}")


def geometric_ladder(high: float = 1.0, low: float = LOWEST_SIGMA, levels: int = 10) -> list[float]:
    """σ_i from high down to low, geometrically spaced (1.0, 0.599, …, 0.017, 0.01 by default)."""
    return [high * (low / high) ** (i / (levels - 1)) for i in range(levels)]


class NoiseConfig(Section):
    """How training noise is added. σ itself is not set here: each stage trains at its own σ, which the
    schedule decides (``schedule.sigma`` and ``schedule.ladder``; see :mod:`study.trial.stages`).

    x + σ·ε (``fixed``) or x + σ·u·ε with u ~ U(0, 1) per crop (``uniform``, the paper's).
    Noise-conditional priors instead draw σ per clip and source, either from the study ladder's levels
    ≤ the stage's σ (``levels: ladder``), log-uniformly between the lowest ladder level and the stage's σ
    (``loguniform``) or log-normally within that range (``lognormal``), and are told the σ they see. ``weighting`` sets how clips at different σ count in the loss: ``uniform``
    (plain mean of nats per sample) or ``sigma_squared`` (weights σ²/mean σ², emphasising large σ as
    denoising score matching does).
    """

    mode: Literal["fixed", "uniform"] = "fixed"
    clip: bool = False  # clip the noisy clip to [-1, 1] (the paper did)
    # "lognormal": log σ ~ N(log_mean, log_std²) cut to [lowest ladder level, stage σ] (EDM's training levels,
    # which put most of the work at mid σ and still reach large σ when the ladder does)
    levels: Literal["ladder", "loguniform", "lognormal"] = "ladder"
    log_mean: float = Field(-0.5, ge=-10, le=5)
    log_std: float = Field(1.2, gt=0, le=10)
    weighting: Literal["uniform", "sigma_squared"] = "uniform"

    @model_validator(mode="before")
    @classmethod
    def _sigma_lives_in_the_schedule(cls, data):
        if isinstance(data, dict) and "sigma" in data:
            raise ValueError("training.noise.sigma is not a setting: every stage trains at the σ its schedule "
                             "gives it; set schedule.sigma (and schedule.ladder) instead")
        return data


class TrainingConfig(Section):
    steps: int = Field(1000, ge=0)
    batch_size: int = Field(8, ge=1)
    crop: int = Field(4096, ge=16)
    lr: float = Field(1e-3, gt=0)
    lr_decay: float = Field(0.6, gt=0, le=1)
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.9])  # fractions of steps
    # The length the learning-rate milestones are fractions of (default: steps). Set it (e.g. to the longest
    # length on a training.steps axis) and every length trains on one learning-rate curve, so a shorter run is
    # exactly the start of a longer one: the stage store then trains each lineage once, in order of length,
    # and a longer stage continues from a shorter one's final weights and optimiser state (study.trial.stage_training)
    lr_horizon: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(1.0, gt=0)  # per-source gradient-norm clipping
    hybrid_lambda: float = Field(0.0, ge=0)  # weight of the discriminative cross-entropy term (0 = pure ML)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    seed: int = 0
    log_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(500, ge=1)

    @model_validator(mode="after")
    def _milestones_are_fractions(self):
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError("training.milestones are fractions of the steps, each in (0, 1)")
        return self


class ScheduleConfig(Section):
    """How a trial reaches its target noise level σ*.

    ``scratch``: train at σ* from random weights. ``from_clean``: train clean, then fine-tune at σ*
    (the published protocol). ``chained``: train clean, then fine-tune through every ladder level below σ*
    in increasing order and finally at σ*, each stage starting from the previous one.
    """

    kind: Literal["scratch", "from_clean", "chained"] = "from_clean"
    sigma: float = Field(0.0, ge=0, le=10)
    finetune_steps: int | None = Field(None, ge=0)  # per fine-tuning stage; default training.steps
    ladder: list[Annotated[float, Field(gt=0)]] = Field(default_factory=geometric_ladder, min_length=1)


class EvaluationConfig(Section):
    """Held-out clips for discrimination and smoothness; fixed by ``data.seed`` (the test split)."""

    clips: int = Field(256, ge=2)  # per source; AUROC's standard error ≈0.01 needs a few hundred
    crop: int = Field(4000, ge=16)
    # Clips per forward pass; None sizes passes to ≈8 192 samples per source, which keeps activations in
    # cache: on 2 CPU cores a toy WaveNet scores 3× faster at 2×4 000 samples per pass than at 16×4 000.
    batch_size: int | None = Field(None, ge=1)
    noise_levels: list[float] = Field(default_factory=lambda: [0.001, 0.01, 0.05, 0.1])
    seed: int = 1234  # seed of the test noise, identical for every prior
    # Train a background prior on all sources pooled (same architecture, background_steps, default
    # training.steps) and report auroc_ratio, the likelihood ratio against it (Ren et al. 2019).
    background: bool = False
    background_steps: int | None = Field(None, ge=1)


# The sampler's options, declared once: SeparationConfig validates them, LangevinSchedule (study.trial.separate)
# takes them, and INIT_NAMES says in words where each start begins (logs and plots).
Init = Literal["mixture", "noise", "projected", "noised_prior", "denoiser", "amortised"]
Rule = Literal["gaussian", "dirac", "smoothed_map"]
Predictor = Literal["none", "reverse_diffusion"]
PinnedSigma = Literal["level", "matched"]
INIT_NAMES = {"mixture": "the mixture", "noise": "noise", "projected": "noise projected onto the mixture",
              "noised_prior": "the noised prior", "denoiser": "the denoised mixture",
              "amortised": "the separator's estimate"}


class SeparatorConfig(Section):
    """A separator network trained by the priors alone (study.trial.amortised): torchaudio's ConvTasNet, as the
    supervised reference, fed training *mixtures*; its outputs are moved along the priors' scores at a noise
    level annealed geometrically from ``sigma_high`` down to ``sigma_low``. No clean source reaches its loss."""

    steps: int = Field(0, ge=0, le=1_000_000)  # 0: no separator
    lr: float = Field(1e-3, gt=0, le=1)
    batch_size: int = Field(8, ge=1, le=4096)
    crop: int = Field(2048, ge=16)
    # where the annealing starts (None: the top separation level) and stops: the peaked low-σ priors undo what
    # the smooth ones taught (science.md §11), so where it stops is a setting to map
    sigma_high: float | None = Field(None, gt=0)
    sigma_low: float = Field(0.5, gt=0)
    # "dirac": outputs projected onto the mixture (Σ α_k ŝ_k = m exactly); "gaussian": a likelihood term
    # ‖m − Σ α ŝ‖²/(2γ²), γ² = σ²·Σα², pulls them towards it
    likelihood: Literal["dirac", "gaussian"] = "dirac"
    # the kept weights: those whose estimates the priors find most likely (Σ_k log p_k at sigma_low) on
    # ``select_mixtures`` mixtures of training crops, checked every ``select_every`` steps: never the truth
    select_every: int = Field(50, ge=1)
    select_mixtures: int = Field(8, ge=1, le=1024)
    grad_clip: float = Field(5.0, gt=0)
    # "untrained": the control, the same separator taught by freshly initialised priors of the same family
    priors: Literal["trained", "untrained"] = "trained"
    seed: int = 0

    @model_validator(mode="after")
    def _annealing_goes_down(self):
        if self.sigma_high is not None and self.sigma_high < self.sigma_low:
            raise ValueError(f"sigma_high ({self.sigma_high:g}) must be at least sigma_low ({self.sigma_low:g})")
        return self


class SeparationConfig(Section):
    """Annealed Langevin over the stage priors, after the last stage (study.trial.separate)."""

    enabled: bool = True
    mixtures: int = Field(8, ge=1)
    length: int = Field(4096, ge=16)
    steps_per_level: int = Field(100, ge=1)
    epsilon: float = Field(2e-5, gt=0)
    floor_sigma: float = Field(LOWEST_SIGMA, gt=0)  # the level a clean stage's prior is used at
    start_sigma: float | None = Field(None, gt=0)  # enter the ladder at the first level <= this
    # "mixture" copies it into every source; "noise" draws N(0, σ_entry²); "projected" projects that noise onto
    # the mixture constraint Σ α_k s_k = m; "noised_prior" draws N(0, σ_entry² + v), a sample of the σ-noised
    # prior (v: the sources' variance, read off the mixture); "denoiser" is each prior's one-shot denoiser
    # applied to m/α_k at the noise the other sources put on it, projected onto the constraint
    init: Init = "mixture"
    # the levels: the ladder's levels up to the last stage's σ, or (σ-conditional priors) Karras et al.'s
    # ρ-spaced levels from the entry σ (start_sigma, else the last stage's σ) down to floor_sigma
    levels: Literal["ladder", "karras"] = "ladder"
    karras_levels: int = Field(40, ge=2, le=1000)
    karras_rho: float = Field(7.0, gt=0)
    # before each level's steps, raise the noise from σ_i to σ_i·(1 + churn) with fresh noise (EDM's churn)
    churn: float = Field(0.0, ge=0, le=10)
    # the Dirac rule's pinned source carries the other sources' noise, √(Σ_{j<K} α_j²)/α_K · σ: score it at
    # that level ("matched") or at σ ("level", BASIS/MSDM)
    pinned_sigma: PinnedSigma = "level"
    # "smoothed_map" spreads the score's noise level log-uniformly over [σ/spread, σ·spread]
    # one reverse-diffusion step between levels before the Langevin steps (predictor–corrector)
    predictor: Predictor = "none"
    steps_growth: float = Field(1.0, ge=1, le=100)  # the last level runs this many times steps_per_level
    # also run the same sampler started at the true sources (si_sdr_oracle_start): does the prior hold them?
    oracle_start: bool = True
    # "gaussian": Langevin with a Gaussian likelihood; "dirac": Langevin on K−1 sources, the last pinned by the
    # mixture; "smoothed_map": mode seeking (no injected noise) with the score taken at a randomly drawn level
    # around a noised copy of the iterate (randomised smoothing), with the Gaussian likelihood
    rule: Rule = "gaussian"
    smoothing_spread: float = Field(2.0, ge=1, le=100)
    likelihood_scale: float = Field(1.0, gt=0)  # γ_i² = scale·σ_i²·Σα²
    bound: float = Field(30.0, gt=0)  # |s| beyond this is divergence (unit-RMS stems rarely peak above 10)
    seed: int = 0
    audio_examples: int = Field(2, ge=0)  # scored crops joined with a short silence (audio/crops)
    # a stretch of one test mixture this long, separated as such in consecutive crops of ``length`` and joined
    # back (audio/excerpt): long enough to listen to; 0 for none. Stored under its own key
    listen_seconds: float = Field(2.0, ge=0, le=60)
    # Σ_k log p_k(estimate) − Σ_k log p_k(truth) per mixture, at the last level (likelihood_gap): negative means
    # the sampler did not reach what the priors prefer; costs one log p pass (a bound for score priors)
    likelihood_gap: bool = True
    # a supervised reference line: ConvTasNet trained this many steps on the same training sources (0: none),
    # trained once per store and scored on the same test mixtures (si_sdri_supervised)
    reference_steps: int = Field(0, ge=0, le=1_000_000)
    reference_lr: float = Field(1e-3, gt=0, le=1)
    separator: SeparatorConfig = Field(default_factory=SeparatorConfig)
    # after the sampler: this many Gibbs sweeps, each re-separating every pair of neighbouring sources (k, k+1)
    # under the mixture constraint with the others held fixed (MSDM's re-separation), over the last level
    gibbs_sweeps: int = Field(0, ge=0, le=1000)

    @model_validator(mode="after")
    def _settings_fit_the_rule(self):
        if self.pinned_sigma == "matched" and self.rule != "dirac":
            raise ValueError("pinned_sigma: 'matched' applies to the dirac rule only (set rule: dirac)")
        if self.init == "amortised" and not self.separator.steps:
            raise ValueError("init: 'amortised' starts from the separator: set separation.separator.steps")
        if self.gibbs_sweeps and self.rule == "smoothed_map":
            raise ValueError("gibbs_sweeps re-separates with the gaussian or dirac rule, not smoothed_map")
        return self


class TrialConfig(Section):
    """One point of the study: an architecture, a target σ* and a schedule, trained on all sources."""

    name: Name = "trial"
    data: DataConfig = Field(default_factory=DataConfig)
    prior: PriorConfig = Field(default_factory=PriorConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    separation: SeparationConfig = Field(default_factory=SeparationConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)  # torch CPU threads; None keeps torch's default
    # bf16 autocast for the networks' convolutions (densities stay float32): "auto" uses it on CUDA only;
    # "bfloat16" also on CPU, about 1.6x faster training where the CPU has AVX512-BF16 or AMX
    precision: Literal["auto", "float32", "bfloat16"] = "auto"

    @property
    def noise_conditional(self) -> bool:
        """Whether the prior is told σ (the one answer: stage planning, validation and keys ask here): always
        for a score prior; otherwise its constructor's ``noise_conditional``, as set or by default."""
        if trained_by(self.prior.name) == "denoising":
            return True
        if "noise_conditional" not in prior_defaults(self.prior.name):
            return False
        return bool(prior_setting(self.prior.name, self.prior.preset, self.prior.hparams, "noise_conditional"))

    @model_validator(mode="after")
    def _sampler_needs_what_it_asks_for(self):
        """Settings that take the score at levels other than the stages' own need a σ-conditional prior."""
        sep = self.separation
        needs = [("separation.levels: karras", sep.levels == "karras"), ("separation.init: denoiser", sep.init == "denoiser"),
                 ("separation.rule: smoothed_map", sep.rule == "smoothed_map"),
                 ("separation.pinned_sigma: matched", sep.pinned_sigma == "matched")]
        for setting, used in needs:
            if used and not self.noise_conditional:
                raise ValueError(f"{setting} takes scores at any noise level: it needs a σ-conditional prior "
                                 f"({self.prior.name} is not; use scorenet, wavenet_nc or flowavenet_nc)")
        return self

    @model_validator(mode="after")
    def _unit_range_needs_peak_normalisation(self):
        """Settings that assume audio in [-1, 1] cannot take unit-RMS sources, whose peaks exceed 1."""
        if self.data.normalise == "peak":
            return self
        setting = functools.partial(prior_setting, self.prior.name, self.prior.preset, self.prior.hparams)
        wavenet = "head" in prior_defaults(self.prior.name)
        needs_unit_range = [("training.noise.clip", self.training.noise.clip),
                            ("prior.hparams.head=mulaw", wavenet and setting("head") == "mulaw"),
                            ("prior.hparams.support=unit", wavenet and setting("support") == "unit")]
        for setting, used in needs_unit_range:
            if used:
                raise ValueError(f"{setting} assumes audio in [-1, 1], but data.normalise 'rms' gives unit-RMS "
                                 "sources whose peaks exceed 1; set data.normalise: peak")
        return self

    @model_validator(mode="after")
    def _score_prior_fits_its_range(self):
        """A score prior learns σ in [sigma_min, sigma_max]: the ladder and σ* must lie there, and its log p is
        a quadrature bound, too costly inside every training step of the hybrid term."""
        if trained_by(self.prior.name) != "denoising":
            return self
        setting = functools.partial(prior_setting, self.prior.name, self.prior.preset, self.prior.hparams)
        low, high = setting("sigma_min"), setting("sigma_max")
        if self.training.hybrid_lambda > 0:
            raise ValueError(f"training.hybrid_lambda: {self.prior.name} trains by denoising score matching and "
                             "has no per-step likelihood for the discriminative term; set it to 0")
        ladder = self.schedule.ladder
        if min(ladder) < low * (1 - SIGMA_TOLERANCE) or max(ladder) > high * (1 + SIGMA_TOLERANCE):
            raise ValueError(f"schedule.ladder spans [{min(ladder):g}, {max(ladder):g}] but {self.prior.name} covers "
                             f"σ in [sigma_min={low:g}, sigma_max={high:g}] (prior.hparams)")
        if self.schedule.sigma > high * (1 + SIGMA_TOLERANCE):
            raise ValueError(f"schedule.sigma={self.schedule.sigma:g} exceeds the prior's sigma_max={high:g}")
        return self

    @model_validator(mode="after")
    def _clips_exist(self):
        """Toy test splits have a known size: asking for more clips than exist is a mistake, not a cap."""
        if self.data.kind == "toy" and self.evaluation.clips > self.data.test_size:
            raise ValueError(f"evaluation.clips={self.evaluation.clips} exceeds the test split's "
                             f"data.test_size={self.data.test_size}")
        return self

    @model_validator(mode="after")
    def _lengths_fit_the_flow(self):
        if self.prior.name.startswith("flowavenet"):
            blocks = prior_setting(self.prior.name, self.prior.preset, self.prior.hparams, "blocks")
            multiple = 2 ** int(blocks)
            for path, value in [("training.crop", self.training.crop), ("evaluation.crop", self.evaluation.crop),
                                ("separation.length", self.separation.length)]:
                if value % multiple:
                    raise ValueError(f"{path}={value} must be divisible by {multiple} for a FloWaveNet of "
                                     f"{blocks} blocks")
        return self
