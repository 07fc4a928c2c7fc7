"""How a stage is trained, continued and resumed: each stage, evaluation and separation lives in the stage store
(:mod:`study.store.stage_store`) under its content key (:mod:`study.trial.stages`) and is built once, under a
lease (:mod:`study.store.leases`): a trial that finds it complete reuses it, one that finds another trial
building it waits, and a trial that was stopped mid-stage continues from the stage's last stored checkpoint
(the loop itself, :func:`study.trial.train.train`, saves and resumes those). A complete folder whose files no
longer match their sealed digests is set aside and built again, never used.

Training length as an axis: stages of one lineage are trained once, in order of length. With
``training.lr_horizon`` every length of a stage follows one learning-rate curve, and batches and noise
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

import io
import os
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from models import Prior, build_prior, prior_checkpoint, prior_from_checkpoint
from study.config.schema import TrainingConfig, TrialConfig
from study.measure.ood import PooledSources
from study.store.leases import Heartbeat
from study.store.stage_store import StageStore, StoreError, write_local
from study.trial.stages import (NOT_WEIGHTS, Stage, background_key, background_stage, background_training,
                                length_key, plan_stages, stage_keys, stage_lineages, stage_training)
from study.trial.train import load_checkpoint, train

WAIT_POLL_SECONDS = 1.0
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
    count = 0
    for cfg in configs:
        stages = plan_stages(cfg)
        for lineage, stage in zip(stage_lineages(cfg, stages, stage_keys(cfg, stages)), stages):
            if lineage is not None and stage.steps > 0:
                announce(store, lineage, stage.steps)
                count += 1
    return count


@dataclass
class Workspace:
    """Where a trial builds and keeps what it makes: the stage store, the lease table shared by every trial
    that uses it, who this trial is (``holder``), its local folder, its log and its device."""

    store: StageStore
    leases: object
    holder: str
    out_dir: Path
    log: Callable[[str], None]
    device: torch.device


class StageBuilder:
    """A trial's stages, each obtained from the store or trained into it once; also builds, once per store,
    any folder of results (:meth:`folder_once`). ``train_clips()`` gives the training clips when a stage
    must be trained (a trial that reuses everything never decodes training audio)."""

    def __init__(self, cfg: TrialConfig, space: Workspace, train_clips: Callable[[], object]):
        self.cfg, self._train_clips = cfg, train_clips
        self.store, self.leases, self.holder, self.out_dir = space.store, space.leases, space.holder, space.out_dir
        self.log, self.device = space.log, space.device
        self.stages = plan_stages(cfg)
        self.keys = stage_keys(cfg, self.stages)
        self.lineages = stage_lineages(cfg, self.stages, self.keys)
        self.priors: dict[str, Prior] = {}  # by stage key, kept for separation

    @property
    def train_clips(self):
        return self._train_clips()

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
        trained = train(prior, data, training, stage.levels, checkpoint=checkpoint,
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

    def train_background(self) -> None:
        cfg = self.cfg
        self.log(f"--- background prior: {cfg.prior.name} on all sources pooled, "
                 f"{background_training(cfg).steps} clean steps")
        torch.manual_seed(cfg.training.seed)
        prior = build_prior(cfg.prior.name, cfg.prior.preset, num_sources=1, **cfg.prior.hparams)
        self.train_into_store(background_key(cfg), prior, PooledSources(self.train_clips), background_training(cfg),
                              background_stage(cfg))

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
        """Train ``stage`` as the next length of its lineage (:mod:`study.trial.stage_training`), under the lineage's lease:
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
