"""One trial inside a Ray worker: its MLflow child run around :func:`study.trial.run.run_trial`."""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from ray import tune

from study.config.schema import TrialConfig
from study.store.leases import LEASES, FileLeases, LeaseTable
from study.runtime.machine import cpu_capability
from study.runtime.precision import resolve_precision
from study.store.stage_store import StageStore
from study.sweep.config import trial_tree
from study.sweep.labels import labelled
from study.sweep.leases import RayLeases
from study.sweep.tracking import (CONFIG_TAG, SWEEP_TAG, client_for, finish, flatten, log_folder, log_metrics,
                                  logged_steps, open_child)
from study.trial.run import config_id, run_trial


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one sweep shares, set once by the driver."""

    base: dict  # the sweep's base trial tree, data paths made absolute
    varied: set[str]  # the settings that differ between trials (named in labels)
    sweep_name: str
    tracking_uri: str
    experiment_id: str
    parent_id: str
    cpus: float
    gpus: float
    store_uri: str  # the stage store shared by every sweep on the storage
    share_stages: bool  # false: stages are private to each trial
    lease_actor: str | None = None  # the storage's lease actor (object storage); None: lease files beside the store


def trial_config(params: dict, context: TrialContext) -> TrialConfig:
    """The trial's config, with the threads and device its Ray resources give it."""
    cfg = TrialConfig.model_validate(trial_tree(context.base, params))
    use_gpu = context.gpus > 0 and torch.cuda.is_available()
    return cfg.model_copy(update={"threads": max(1, int(context.cpus)), "device": "cuda" if use_gpu else "cpu"})


def tune_trial(params: dict, *, context: TrialContext) -> None:
    """Ray Tune function trainable: one trial, tracked in its own MLflow child run.

    Its stages live in the stage store ``context.store_uri`` (shared by every trial of every sweep on that
    storage, or private to the trial when ``context.lease_actor`` is None), so a restarted trial reuses what
    it finished. Each stage's metrics are logged once per step, even when the trial runs again after an
    interruption.
    """
    cfg = trial_config(params, context)
    out_dir = Path(tune.get_context().get_trial_dir()) / "work"
    client = client_for(context.tracking_uri)
    key = tune.get_context().get_trial_id()
    label = labelled(cfg, params, context.varied, key)

    def log(line: str) -> None:  # Ray prefixes a worker's lines with its pid: say which trial instead
        print(f"[{label}] {line}", flush=True)

    run_id, reattached = open_child(client, context.experiment_id, context.parent_id, key, label,
                                    flatten(cfg.model_dump(mode="json", exclude={"threads", "device"})),
                                    {CONFIG_TAG: config_id(cfg), SWEEP_TAG: context.sweep_name})
    tag_where_it_runs(client, run_id, cfg)
    logged = logged_steps(client, run_id, "stage") if reattached else set()
    if reattached:
        log(f"re-attached to MLflow run {run_id}; stages already logged: {sorted(logged)}")

    def report(metrics: dict, stage_dir: Path) -> None:
        stage = int(metrics["stage"])
        if stage not in logged:  # a re-run trial reports its reused stages again: log each step once
            client.set_tag(run_id, f"study.stage{stage}.key", metrics["stage_key"])
            client.set_tag(run_id, f"study.stage{stage}.reused", str(bool(metrics["stage_reused"])).lower())
            log_metrics(client, run_id, {k: v for k, v in metrics.items() if k != "stage_key"}, step=stage)
            log_folder(client, run_id, stage_dir, f"stage{stage}")
            logged.add(stage)
        tune.report(metrics)

    store, leases = stage_store(context, cfg)
    try:
        run_trial(cfg, out_dir, report, log=log, store=store, leases=leases,
                  holder=f"{key}@{ray.util.get_node_ip_address()}")
        for name in ("metrics.json", "config.yaml"):
            client.log_artifact(run_id, str(out_dir / name))
        if (out_dir / "separation").is_dir():
            log_folder(client, run_id, out_dir / "separation")
        finish(client, run_id)
    except (KeyboardInterrupt, SystemExit) as stop:  # Tune stopping the trial: interrupted, not failed
        finish(client, run_id, killed=f"stopped by {type(stop).__name__}; resume the sweep to continue it")
        raise
    except BaseException as error:  # noqa: BLE001 - the run must never be left RUNNING
        finish(client, run_id, error="".join(traceback.format_exception(error)))
        raise


def stage_store(context: TrialContext, cfg: TrialConfig) -> tuple[StageStore, object]:
    """The trial's stage store and lease table: the sweep's shared store (leases in a Ray actor on object
    storage, lease files beside a local store), or one private to the trial with ``share_stages: false``."""
    if not context.share_stages:
        return StageStore(f"{context.store_uri}/private/{config_id(cfg)}"), LeaseTable()
    leases = RayLeases(context.lease_actor) if context.lease_actor else FileLeases(f"{context.store_uri}/{LEASES}")
    return StageStore(context.store_uri), leases


def tag_where_it_runs(client, run_id: str, cfg: TrialConfig) -> None:
    """The node, the precision and the CPU capability (a trial may move to another node after a restore,
    and the same config runs in bf16 on one host and float32 on another)."""
    client.set_tag(run_id, "study.node_id", ray.get_runtime_context().get_node_id())
    client.set_tag(run_id, "study.node_ip", ray.util.get_node_ip_address())
    client.set_tag(run_id, "study.precision", resolve_precision(cfg.precision, torch.device(cfg.device)).used)
    client.set_tag(run_id, "study.cpu_capability", cpu_capability())
