"""Training length as an axis: stages of one lineage are trained once, in order of length.

With ``training.lr_horizon`` every length of a stage follows one learning-rate curve, and batches and noise
depend only on (seed, step) (:mod:`study.trial.train`), so a stage of N steps is exactly a stage of M < N steps
trained N − M steps further. The stages that differ only in length form a lineage
(:func:`study.trial.stages.stage_lineages`). The lengths a lineage is wanted at are announced in the store under
``lineages/<lineage>/<steps>`` (by the sweep for all of its grid before any trial starts, and by every trial
for its own length), and whoever trains the lineage trains the announced lengths in increasing order,
sealing each as its own stage on the way and keeping each one's final optimiser state (``state.pt``), from
which a longer length continues.

A sealed shorter stage is used only when its files still have their sealed digests and its state records
the same training settings but the length; anything else is ignored and the lineage trained again from its
start (a stale or damaged stage never passes for a good one).
"""
from __future__ import annotations

from study.config.schema import TrainingConfig
from study.trial.stages import NOT_WEIGHTS
from study.store.stage_store import StageStore

LINEAGES = "lineages"
STATE = "state.pt"  # a lineage stage's final training checkpoint: weights, optimiser, LR schedule, step


def announce(store: StageStore, lineage: str, steps: int) -> None:
    """Say that ``lineage`` is wanted at ``steps`` (an empty marker; announcing twice changes nothing)."""
    marker = f"{LINEAGES}/{lineage}/{steps}"
    if not store.exists(marker):
        store.write_bytes(marker, b"")


def announced(store: StageStore, lineage: str) -> list[int]:
    """The lengths ``lineage`` is wanted at, increasing (names that are not a length are ignored)."""
    return sorted({int(name) for name in store.list(f"{LINEAGES}/{lineage}") if name.isdigit() and int(name) > 0})


def same_training(recorded: dict, training: TrainingConfig) -> bool:
    """Whether a checkpoint's training record is ``training`` but for the length (and logging)."""
    ignored = NOT_WEIGHTS | {"steps"}
    ours = training.model_dump(mode="json", exclude=ignored)
    return {k: v for k, v in recorded.items() if k not in ignored} == ours


def announce_sweep(store: StageStore, configs) -> int:
    """Announce every lineage length of ``configs`` (a grid sweep's trials) before any trial starts, so the
    first trial to train a lineage passes through every length the sweep will ask for. -> lengths announced."""
    from study.trial.stages import plan_stages, stage_keys, stage_lineages

    count = 0
    for cfg in configs:
        stages = plan_stages(cfg)
        for lineage, stage in zip(stage_lineages(cfg, stages, stage_keys(cfg, stages)), stages):
            if lineage is not None and stage.steps > 0:
                announce(store, lineage, stage.steps)
                count += 1
    return count
