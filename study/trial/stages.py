"""A trial's stages and their content keys.

A stage is one training phase at one noise level. Its key is a hash of everything that determines its
weights: the training data, the prior family with its resolved hyper-parameters, the stage's training
settings (steps, seed, σ, noise law) and the key of the stage it starts from. Device, threads, names,
logging and checkpoint intervals, evaluation and separation settings are left out, so two trials that need
the same weights name the same stage and the store trains it once. Evaluations are keyed by the stage key
plus the evaluation settings and test data; a separation by its levels' stage keys plus its settings.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from models.catalog import PRESETS, trained_by
from study.data.content import split_digest
from study.data.layouts import source_names
from study.config.schema import SIGMA_TOLERANCE, TrainingConfig, TrialConfig

KEY_LENGTH = 16
TEST_ONLY_DATA = {"test_size", "eval_amplitude", "test_split", "cache_dir"}
TRAIN_ONLY_DATA = {"train_size", "train_amplitude", "train_split", "cache_dir"}
NOT_WEIGHTS = {"log_every", "checkpoint_every"}  # training settings that do not change the weights


@dataclass(frozen=True)
class TrainingLevels:
    """The noise a stage trains with: up to ``train_sigma`` (0: clean), drawn for a σ-conditional prior from
    the levels of its ``ladder`` (None: an unconditional prior, trained at ``train_sigma`` itself)."""

    train_sigma: float = 0.0
    ladder: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Stage:
    """One training phase. All of its σ policy is decided here, once, by :func:`plan_stages`."""

    index: int
    sigma: float  # the stage's noise level (0 = clean): what names and keys it
    steps: int
    init_from: int | None  # stage whose weights this stage starts from; None = random init
    ladder: tuple[float, ...] | None = None  # the levels a σ-conditional prior trains on; None: unconditional
    lowest_level: float = 0.0  # the lowest level it trains at (a score prior cannot learn at σ = 0)

    @property
    def train_sigma(self) -> float:
        """The level training noise is drawn up to (a score prior's clean stage trains at its lowest level)."""
        return max(self.sigma, self.lowest_level)

    @property
    def levels(self) -> TrainingLevels:
        return TrainingLevels(self.train_sigma, self.ladder)


def content_hash(tree, length: int = KEY_LENGTH) -> str:
    """A short, stable hash of a JSON-able tree (dora-style identity)."""
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()[:length]


# Settings added after stores were written are left out of a key while at their default, so that everything
# stored before keeps its key (tests/trial/test_stage_keys.py pins them).
LATER_NOISE_SETTINGS = ("log_mean", "log_std")
LATER_TRAINING_SETTINGS = ("lr_horizon",)
LATER_SEPARATION_SETTINGS = ("levels", "karras_levels", "karras_rho", "churn", "pinned_sigma", "smoothing_spread",
                             "likelihood_gap", "gibbs_sweeps")


# the supervised reference and the listening excerpt have their own keys
NOT_SEPARATION = {"reference_steps", "reference_lr", "listen_seconds", "separator"}


def identity(section, later: tuple[str, ...] = (), exclude: set[str] | None = None) -> dict:
    """A config section as a key sees it: every setting but ``exclude``, and ``later`` ones only where they
    differ from their default."""
    tree = section.model_dump(mode="json", exclude=exclude)
    for name in later:
        if getattr(section, name) == type(section).model_fields[name].default:
            tree.pop(name)
    return tree


def levels_up_to(ladder, sigma: float, include_sigma: bool = True) -> list[float]:
    """The ladder levels ≤ σ (< σ without ``include_sigma``), ascending. The one place that compares noise
    levels: training, stage planning, matched AUROC and separation all ask here, with one tolerance."""
    below = [level for level in ladder if level <= sigma * (1 + SIGMA_TOLERANCE)]
    if not include_sigma:
        below = [level for level in below if level < sigma * (1 - SIGMA_TOLERANCE)]
    return sorted(below)


def plan_stages(cfg: TrialConfig) -> list[Stage]:
    """The stages of ``cfg.schedule`` (see :class:`study.config.schema.ScheduleConfig`)."""
    target, steps = cfg.schedule.sigma, cfg.training.steps
    finetune = cfg.schedule.finetune_steps if cfg.schedule.finetune_steps is not None else steps
    noise = noise_policy(cfg)
    if cfg.schedule.kind == "scratch":
        return [Stage(0, target, steps, None, **noise)]
    stages = [Stage(0, 0.0, steps, None, **noise)]
    if target == 0:
        return stages
    levels = levels_up_to(cfg.schedule.ladder, target, include_sigma=False) if cfg.schedule.kind == "chained" else []
    for sigma in [*levels, target]:
        previous = stages[-1].index
        stages.append(Stage(previous + 1, sigma, finetune, previous if cfg.schedule.kind == "chained" else 0, **noise))
    return stages


def noise_policy(cfg: TrialConfig) -> dict:
    """The ladder a σ-conditional prior trains on (the configured one, for every prior the trial trains) and its
    lowest level: a score prior has no σ = 0, so its clean stage trains at the ladder's lowest level."""
    if not cfg.noise_conditional:
        return {"ladder": None, "lowest_level": 0.0}
    ladder = tuple(cfg.schedule.ladder)
    return {"ladder": ladder, "lowest_level": min(ladder) if trained_by(cfg.prior.name) == "denoising" else 0.0}


def stage_training(cfg: TrialConfig, stage: Stage) -> TrainingConfig:
    """The training settings of one stage: its steps and its own seed. It trains at ``stage.sigma``."""
    return cfg.training.model_copy(update={"steps": stage.steps, "seed": cfg.training.seed + stage.index})


def _prior_identity(cfg: TrialConfig) -> dict:
    """The prior family and its full constructor kwargs (a preset and the same explicit values are one prior)."""
    hparams = {**PRESETS[cfg.prior.name].get(cfg.prior.preset or "", {}), **cfg.prior.hparams}
    return {"name": cfg.prior.name, "hparams": hparams}


def _training_identity(training: TrainingConfig, sigma: float, noise_conditional: bool) -> dict:
    tree = identity(training, LATER_TRAINING_SETTINGS, NOT_WEIGHTS)
    tree["noise"] = identity(training.noise, LATER_NOISE_SETTINGS)
    tree["sigma"] = sigma
    if sigma == 0:  # clean: the noise law is never used
        tree["noise"] = {}
    elif not noise_conditional:  # levels and weighting only apply to σ-conditional priors
        tree["noise"].pop("levels"), tree["noise"].pop("weighting")
    if tree["noise"].get("levels") != "lognormal":  # the log-normal's parameters only apply to it
        tree["noise"].pop("log_mean", None), tree["noise"].pop("log_std", None)
    return tree


def data_identity(cfg: TrialConfig, split: str) -> dict:
    """The data settings that decide the clips of ``split`` ("train" or "test") and, for audio folders, a digest
    of the split's files (new audio under the same path is new data). Toy data is its settings."""
    tree = cfg.data.model_dump(mode="json", exclude=TEST_ONLY_DATA if split == "train" else TRAIN_ONLY_DATA)
    if cfg.data.kind != "toy":
        data = cfg.data
        tree["content"] = split_digest(data.root, data.train_split if split == "train" else data.test_split,
                                       source_names(data), data.kind, data.cache_dir)
    return tree


def _stage_tree(cfg: TrialConfig, stage: Stage, keys: list[str]) -> dict:
    """Everything that decides a stage's weights (``keys``: the keys of the stages before it)."""
    tree = {"data": data_identity(cfg, "train"), "prior": _prior_identity(cfg),
            "training": _training_identity(stage_training(cfg, stage), stage.sigma, cfg.noise_conditional),
            "parent": keys[stage.init_from] if stage.init_from is not None else None}
    if cfg.noise_conditional:
        tree["ladder"] = list(cfg.schedule.ladder)
    return tree


def stage_keys(cfg: TrialConfig, stages: list[Stage]) -> list[str]:
    """The content key of every stage, in order (a stage's key includes its parent's)."""
    keys: list[str] = []
    for stage in stages:
        keys.append(content_hash(_stage_tree(cfg, stage, keys)))
    return keys


def length_key(cfg: TrialConfig, stage: Stage, keys: list[str], steps: int) -> str:
    """The key ``stage`` would have at another length (``keys``: the trial's stage keys)."""
    return content_hash(_stage_tree(cfg, replace(stage, steps=steps), keys))


def stage_lineages(cfg: TrialConfig, stages: list[Stage], keys: list[str]) -> list[str | None]:
    """Per stage, the key of its lineage: everything its key holds but the number of steps. Stages of one
    lineage differ only in length and, with ``training.lr_horizon``, follow one learning-rate curve, so each is
    the start of the longer ones (:mod:`study.trial.stage_training`). None without ``lr_horizon``: lengths do not nest."""
    if cfg.training.lr_horizon is None:
        return [None] * len(stages)
    lineages = []
    for stage in stages:
        tree = _stage_tree(cfg, stage, keys)
        del tree["training"]["steps"]
        lineages.append(content_hash({"lineage": tree}))
    return lineages


def background_training(cfg: TrialConfig) -> TrainingConfig:
    """The background prior's training (clean): ``evaluation.background_steps`` (default training.steps)."""
    return cfg.training.model_copy(update={"steps": cfg.evaluation.background_steps or cfg.training.steps})


def background_stage(cfg: TrialConfig) -> Stage:
    """The background prior's one clean stage, with the trial's noise policy."""
    return Stage(0, 0.0, background_training(cfg).steps, None, **noise_policy(cfg))


def background_key(cfg: TrialConfig) -> str:
    """The key of the background prior (one source, all sources pooled, clean). A σ-conditional one trains
    over the configured ladder, which is then part of its key."""
    tree = {"background": True, "data": data_identity(cfg, "train"), "prior": _prior_identity(cfg),
            "training": _training_identity(background_training(cfg), 0.0, False)}
    if cfg.noise_conditional:
        tree["ladder"] = list(cfg.schedule.ladder)
    return content_hash(tree)


def evaluation_key(cfg: TrialConfig, stage: Stage, key: str) -> str:
    """The key of one stage's evaluation: its weights, the test clips and every evaluation setting."""
    settings = cfg.evaluation.model_dump(mode="json", exclude={"batch_size"})
    return content_hash({"stage": key, "evaluation": settings, "data": data_identity(cfg, "test"),
                         "matched": levels_up_to(cfg.schedule.ladder, stage.sigma),
                         "background": background_key(cfg) if cfg.evaluation.background else None})


def separation_levels(stages: list[Stage], cfg, ladder=None) -> list[tuple[float, int]]:
    """(σ, stage index) in decreasing σ, entered at ``cfg.start_sigma`` when given.

    Unconditional priors: each stage's prior serves at its own σ (a clean one at ``floor_sigma``). With
    ``ladder`` (a noise-conditional prior), the last stage's prior serves every ladder level up to its σ, or
    with ``levels: karras`` Karras levels from the entry σ (at most its σ) down to ``floor_sigma``.
    """
    if ladder is not None and cfg.levels == "karras":
        last = stages[-1]
        top = min(cfg.start_sigma or last.sigma, last.sigma)
        return [(sigma, last.index) for sigma in karras_levels(top, cfg.floor_sigma, cfg.karras_levels, cfg.karras_rho)]
    levels = {}
    if ladder is not None:
        last = stages[-1]
        for sigma in levels_up_to(ladder, max(last.sigma, cfg.floor_sigma)):
            levels[sigma] = last.index
    else:
        for stage in stages:  # a later stage at the same level (e.g. fine-tuned at the floor) wins
            levels[max(stage.sigma, cfg.floor_sigma)] = stage.index
    ordered = sorted(levels.items(), reverse=True) or [(cfg.floor_sigma, stages[-1].index)]
    if cfg.start_sigma is not None:
        allowed = set(levels_up_to([s for s, _ in ordered], cfg.start_sigma))
        entered = [(s, i) for s, i in ordered if s in allowed]
        ordered = entered or ordered[-1:]
    return ordered


def karras_levels(high: float, low: float, count: int, rho: float) -> list[float]:
    """Karras et al. (2022)'s levels: σ_i^{1/ρ} evenly spaced from high to low, so most fall at small σ."""
    if count == 1 or high <= low:
        return [max(high, low)]
    return [(high ** (1 / rho) + i / (count - 1) * (low ** (1 / rho) - high ** (1 / rho))) ** rho for i in range(count)]


def separation_key(cfg: TrialConfig, levels: list[tuple[float, int]], keys: list[str]) -> str:
    """The key of a separation run: the priors at each level, the settings and the test data (and the
    separator, where there is one: the sampler may start from it and is compared with it)."""
    tree = {"levels": [(sigma, keys[index]) for sigma, index in levels],
            "separation": identity(cfg.separation, LATER_SEPARATION_SETTINGS, NOT_SEPARATION),
            "data": data_identity(cfg, "test")}
    if cfg.separation.separator.steps:
        tree["separator"] = separator_key(cfg, levels, keys)
    return content_hash(tree)


def separator_key(cfg: TrialConfig, levels: list[tuple[float, int]], keys: list[str]) -> str:
    """The key of a separator trained by the priors: its settings, the priors that teach it at each level,
    the training data its mixtures come from and the test mixtures it is scored on. Trials with the same
    priors share it."""
    sep = cfg.separation
    return content_hash({"separator": sep.separator.model_dump(mode="json"),
                         "levels": [(sigma, keys[index]) for sigma, index in levels],
                         "train": data_identity(cfg, "train"), "test": data_identity(cfg, "test"),
                         "mixtures": sep.mixtures, "length": sep.length})


def listening_key(cfg: TrialConfig, levels: list[tuple[float, int]], keys: list[str]) -> str:
    """The key of the listening excerpt: its length, and what the scored separation's key holds."""
    return content_hash({"listen_seconds": cfg.separation.listen_seconds,
                         "separation": separation_key(cfg, levels, keys)})


def supervised_key(cfg: TrialConfig) -> str:
    """The key of the supervised reference separator: its training and the data it is trained and scored on."""
    sep = cfg.separation
    return content_hash({"supervised": {"steps": sep.reference_steps, "lr": sep.reference_lr, "seed": sep.seed},
                         "train": data_identity(cfg, "train"), "test": data_identity(cfg, "test"),
                         "mixtures": sep.mixtures, "length": sep.length})


def training_cost(configs: list[TrialConfig]) -> dict[str, tuple[int, int]]:
    """Training steps planned and distinct after sharing, per prior family and overall (key ``all``)."""
    planned: dict[str, int] = {}
    distinct: dict[str, dict[str, int]] = {}
    for cfg in configs:
        stages = plan_stages(cfg)
        keys = stage_keys(cfg, stages)
        # a lineage trains once up to its longest length (its shorter stages are its start)
        work = [(lineage or key, s.steps) for key, lineage, s in zip(keys, stage_lineages(cfg, stages, keys), stages)]
        if cfg.evaluation.background:
            work.append((background_key(cfg), background_training(cfg).steps))
        family = cfg.prior.name
        for key, steps in work:
            planned[family] = planned.get(family, 0) + steps
            distinct.setdefault(family, {})[key] = max(steps, distinct.get(family, {}).get(key, 0))
    cost = {family: (planned[family], sum(distinct[family].values())) for family in planned}
    cost["all"] = (sum(p for p, _ in cost.values()), sum(d for _, d in cost.values()))
    return cost
