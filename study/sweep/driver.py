"""The sweep's driver: start Ray, open the parent run, run every trial under Tune, close what is left open and
end with the frontier and one summary. Every trial is :func:`study.sweep.trainable.tune_trial`."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

# Ray and Tune read these when they are imported: set before the imports below
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# si_sdr exists only after the last stage; earlier stage results legitimately lack it
os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
# one checkpoint per stage is the design; Tune's "snapshotting too often" warning is noise here
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Tune's newer console output infers its columns and cannot be told which; the classic reporter can
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from ray import tune  # noqa: E402

from study.config.reading import ConfigError, excerpt  # noqa: E402
from study.runtime.machine import this_machine  # noqa: E402
from study.store.stage_store import default_store_uri, is_uri, resolved  # noqa: E402
from study.sweep.config import SweepConfig  # noqa: E402
from study.sweep.report.frontier import log_frontier  # noqa: E402
from study.sweep.labels import labelled, varied_settings  # noqa: E402
from study.sweep.leases import start_lease_actor  # noqa: E402
from study.sweep.report.live import LiveFrontier  # noqa: E402
from study.sweep.plan import check_data, unfit  # noqa: E402
from study.sweep.signals import StopSignals  # noqa: E402
from study.sweep.tracking import (ERROR_TAG, KILLED_TAG, REPLACED_TAG, ROLE_TAG, STOPPED_TAG, SWEEP_TAG,  # noqa: E402
                                  TRIAL_TAG, absolute_tracking_uri, child_runs, client_for, close_dangling,
                                  default_artifact_location, ensure_experiment, find_run, finish, open_parent,
                                  redacted, retire_earlier_parents, unreachable)
from study.sweep.trainable import TrialContext, trial_config, tune_trial  # noqa: E402
from study.sweep.tuning import console_reporter, param_space, search_algorithm, trial_scheduler  # noqa: E402


@dataclass
class SweepSummary:
    finished: int
    failed: int
    interrupted: int  # the signal that stopped the sweep (0: it ran to the end)
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    name: str = ""
    experiment: str = ""
    stages: int = 0  # stages the trials ran ...
    reused: int = 0  # ... of which taken from the stage store instead of trained
    seconds: float = 0.0
    store: str = ""
    stopped_early: int = 0  # of the finished trials, stopped at a rung by scheduler.kind pareto_halving

    def describe(self) -> str:
        """The one summary a sweep ends with: how it ended, what was reused, and where the results are."""
        minutes, seconds = divmod(round(self.seconds), 60)
        how = (f"stopped by {signal.Signals(self.interrupted).name}" if self.interrupted else "done")
        link = f"#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"  # the model-training view
        if self.tracking_uri.startswith("http"):
            open_it = f"  open:    {redacted(self.tracking_uri).rstrip('/')}/{link}"
        else:
            open_it = (f"  open:    mlflow ui --backend-store-uri {redacted(self.tracking_uri)} --host 127.0.0.1 --port 5000\n"
                       f"           then http://127.0.0.1:5000/{link}")
        return "\n".join([
            f"sweep {self.name!r} {how} after {minutes} min {seconds} s: {self.finished} trials finished"
            + (f" ({self.stopped_early} of them stopped early)" if self.stopped_early else "") + ", "
            f"{self.failed} failed; {self.reused} of {self.stages} stages reused from the stage store",
            f"  results: MLflow experiment {self.experiment!r}, sweep run {self.parent_run_id} (trials nested "
            f"under it; frontier.png, dilemma.png, study_summary.csv on it); stages in {self.store}",
            open_it])


def storage_root(sweep: SweepConfig) -> str:
    """Absolute local path, or a URI (s3://, gs://, …) left as is."""
    return resolved(sweep.storage)


def absolute_paths(base: dict) -> dict:
    """Resolve relative data paths on the driver: trials run in other working directories."""
    tree = dict(base)
    data = dict(tree.get("data", {}))
    for key in ("root", "cache_dir"):
        if data.get(key):
            data[key] = resolved(data[key])
    if data:
        tree["data"] = data
    return tree


def run_sweep(sweep: SweepConfig, sweep_file: Path | None = None, mode: str = "auto", log=print,
              resume_command: str | None = None) -> SweepSummary:
    """Run (``auto``: resume if this sweep's state exists, else start), ``resume`` or ``restart`` a sweep.
    ``resume_command`` is what the user is told to run after an interruption."""
    started = time.perf_counter()
    root, experiment_path, can_restore, restore = preflight(sweep, mode, log)
    seeds = [] if restore else warm_start(sweep, log)  # a restored searcher holds what it was told
    if not sweep.ray.address and not ray.is_initialized():  # a local Ray gets this machine: ask before starting it
        check_resources(sweep, [this_machine()])
    start_ray(sweep)
    if not restore:
        start_afresh(sweep, root, experiment_path, discard=mode == "restart" and can_restore)
    uri, client, experiment_id = open_experiment(sweep)
    if restore:
        done = finished_already(sweep, client, experiment_id, uri, root, experiment_path)
        if done is not None:
            log(f"sweep {sweep.name!r} has finished already: nothing to do, MLflow left as it was "
                f"(--restart runs it again, reusing its stages)")
            done.seconds = time.perf_counter() - started
            return done
    parent_id = sweep_run(sweep, client, experiment_id, sweep_file, restore, log)
    context = trial_context(sweep, uri, experiment_id, parent_id, root)
    announce_lengths(sweep, context)
    if context.lease_actor:  # outlives the sweep: other sweeps on this storage and cluster may share it
        start_lease_actor(context.lease_actor)
    if restore:
        log(f"resuming sweep {sweep.name!r} from {experiment_path}")
    resume_command = resume_command or shlex.join(["python", "-m", "study.sweep", str(sweep_file), "--resume"])
    try:
        live = LiveFrontier(uri, experiment_id, parent_id, sweep.search.objectives, log=log)
        tuner = make_tuner(sweep, context, root, experiment_path if restore else None, callbacks=[live], seeds=seeds)
        finished, failed, reasons, interrupted = fit(tuner)
    except Exception as error:  # noqa: BLE001 - Tune itself failed (a full disk, a lost state file): close up
        summary = SweepSummary(0, 0, 0, parent_id, experiment_id, uri, sweep.name, sweep.experiment_name,
                               store=context.store_uri)
        reason = f"the sweep crashed: {type(error).__name__}: {excerpt(str(error), 500)}"
        close_crashed(client, summary, reason, log, resume_command)
        raise SweepCrashed(f"{reason}. Once the cause is fixed, resume with: {resume_command}", summary) from error
    summary = SweepSummary(finished, failed, interrupted, parent_id, experiment_id, uri, sweep.name,
                           sweep.experiment_name, store=context.store_uri)
    close_sweep(sweep, client, summary, reasons, log, resume_command, root, live.reader)
    summary.seconds = time.perf_counter() - started
    return summary


def preflight(sweep: SweepConfig, mode: str, log) -> tuple[str, str, bool, bool]:
    """Everything checked before Ray starts, each a one-line ConfigError (exit 2): the data, the storage, the
    tracking database, that a sweep resumed is the one saved, and that this machine can hold a local trial.
    -> (storage root, the sweep's Tune folder, whether saved state exists, whether to resume it)."""
    for warning in check_data(sweep):
        log(warning)
    root = storage_root(sweep)
    experiment_path = f"{root}/{sweep.name}"
    can_restore = tune.Tuner.can_restore(experiment_path)
    if mode == "resume" and not can_restore:
        raise ConfigError(f"--resume: no saved state of sweep {sweep.name!r} under {root}")
    restore = can_restore and mode != "restart"
    check_storage(root)
    problem = unreachable(sweep.mlflow.tracking_uri)
    if problem:
        raise ConfigError(f"mlflow.tracking_uri: {problem}")
    if restore:
        check_unchanged(sweep, experiment_path)
    if not sweep.ray.address and not ray.is_initialized():  # a local Ray gets this machine: ask before starting it
        check_resources(sweep, [this_machine()])
    return root, experiment_path, can_restore, restore


def start_ray(sweep: SweepConfig) -> None:
    """Join ``ray.address`` or start a local Ray (unless one is running), then check a trial fits a node."""
    if not ray.is_initialized():
        ray.init(address=sweep.ray.address, include_dashboard=False) if sweep.ray.address else ray.init(
            include_dashboard=False)
    check_resources(sweep)


def start_afresh(sweep: SweepConfig, root: str, experiment_path: str, discard: bool) -> None:
    """A sweep started anew: the old Tune state thrown away when ``discard`` (--restart; the stage store is
    kept), its settings saved for the next resume, and no early-stopping decision carried over."""
    if discard and not is_uri(root):
        shutil.rmtree(experiment_path)
    save_fingerprint(sweep, experiment_path)
    if sweep.scheduler.kind == "pareto_halving":
        from study.sweep.halving import forget

        forget(root, sweep.name)


def sweep_run(sweep: SweepConfig, client: MlflowClient, experiment_id: str, sweep_file: Path | None, restore: bool,
              log) -> str:
    """The sweep's parent run: the saved one when resuming, else a new one that replaces any earlier run of
    this sweep name (kept, renamed; one sweep run per name)."""
    parent_id = open_parent(client, experiment_id, sweep.name, sweep_file, resume=restore)
    log(f"MLflow: experiment {sweep.experiment_name!r} ({experiment_id}), sweep run {parent_id}")
    if not restore:
        for earlier in retire_earlier_parents(client, experiment_id, sweep.name, parent_id):
            log(f"the earlier sweep run {earlier} is kept as '{sweep.name} (replaced)' with its trials "
                f"(tag {REPLACED_TAG} = {parent_id}); this sweep's run is {parent_id}")
    return parent_id


def announce_lengths(sweep: SweepConfig, context: TrialContext) -> None:
    """With ``training.lr_horizon`` on a grid, announce every training length to the store before any trial
    starts, so that each lineage is trained once, shortest length first (:mod:`study.trial.stage_training`)."""
    if not sweep.share_stages or any(dim.kind != "grid" for dim in sweep.space.values()):
        return
    from study.trial.stage_training import announce_sweep
    from study.store.stage_store import StageStore

    announce_sweep(StageStore(context.store_uri), [trial_config(point, context) for point in sweep.grid_points()])


class SweepCrashed(RuntimeError):
    """Tune failed outside any trial; every run was closed and ``summary`` says what is left."""

    def __init__(self, message: str, summary: SweepSummary):
        super().__init__(message)
        self.summary = summary


MIN_FREE_BYTES = 256 << 20  # below this a stage checkpoint or Tune's state may not fit


def check_storage(root: str) -> None:
    """The storage takes writes and (local) has room, checked before Ray starts and without creating anything:
    one line otherwise."""
    from study.store.stage_store import StageStore

    try:
        if is_uri(root):
            probe = f".write-check-{os.getpid()}"
            StageStore(root).write_bytes(probe, b"ok")
            StageStore(root).delete(probe)
            return
        existing = Path(root)
        while not existing.exists():  # the folder the sweep's storage will be created in
            existing = existing.parent
        with tempfile.TemporaryFile(dir=existing):
            pass
        free = shutil.disk_usage(existing).free
    except OSError as error:
        raise ConfigError(f"storage: cannot write to {root} ({excerpt(str(error), 200)})") from None
    if free < MIN_FREE_BYTES:
        raise ConfigError(f"storage: only {free >> 20} MB free under {root}; a sweep needs at least "
                          f"{MIN_FREE_BYTES >> 20} MB for its checkpoints and state")


FINGERPRINT = "study-sweep.json"  # beside Tune's state: what the saved sweep was started with


def fingerprint(sweep: SweepConfig) -> dict:
    """What decides the sweep's trials (after --set): changing any of it makes the saved state another sweep."""
    return sweep.model_dump(mode="json", include={"base", "space", "search", "scheduler", "share_stages"})


def save_fingerprint(sweep: SweepConfig, experiment_path: str) -> None:
    from study.store.stage_store import StageStore

    StageStore(experiment_path).write_bytes(FINGERPRINT, json.dumps(fingerprint(sweep), sort_keys=True).encode())


def check_unchanged(sweep: SweepConfig, experiment_path: str) -> None:
    """Resuming a sweep whose settings changed since it started would mix two sweeps: refuse, naming what
    changed. State saved before fingerprints were kept is resumed as it is."""
    from study.store.stage_store import StageStore

    saved = StageStore(experiment_path).read_bytes(FINGERPRINT)
    if saved is None:
        return
    changed = changed_settings(json.loads(saved), fingerprint(sweep))
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise ConfigError(f"sweep {sweep.name!r} changed since its saved state ({shown}); run it with --restart "
                          "to start it again (finished stages are still reused from the stage store)")


def changed_settings(before, now, path: str = "") -> list[str]:
    """The field paths where two settings trees differ, compared as data: mappings by key whatever their order,
    lists item by item (a grid of mappings included), numbers by value (1 == 1.0, as JSON reads them)."""
    if isinstance(before, dict) and isinstance(now, dict):
        return sorted(name for key in before.keys() | now.keys()
                      for name in changed_settings(before.get(key), now.get(key), f"{path}{key}."))
    if isinstance(before, list) and isinstance(now, list) and len(before) == len(now):
        return [path.rstrip(".")] if any(changed_settings(b, n) for b, n in zip(before, now)) else []
    same = before == now and (type(before) is type(now) or is_number(before) and is_number(now))
    return [] if same else [path.rstrip(".") or "the settings"]


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # True == 1, yet a setting apart


def close_crashed(client: MlflowClient, summary: SweepSummary, reason: str, log, resume_command: str) -> None:
    """After Tune crashed: every unfinished trial run KILLED with the reason, the parent FAILED."""
    closed = close_dangling(client, summary.experiment_id, summary.parent_run_id, {}, reason)
    children = child_runs(client, summary.experiment_id, summary.parent_run_id)
    statuses = [run.info.status for run in children]
    summary.finished, summary.failed = statuses.count("FINISHED"), statuses.count("FAILED")
    summary.stages, summary.reused = stage_counts(children)
    client.set_tag(summary.parent_run_id, ERROR_TAG, reason)
    client.set_terminated(summary.parent_run_id, "FAILED")
    log(f"{reason}; marked {closed} unfinished trial run(s) KILLED")


def trial_context(sweep: SweepConfig, uri: str, experiment_id: str, parent_id: str, root: str) -> TrialContext:
    return TrialContext(base=absolute_paths(sweep.base), varied=varied_settings(sweep), sweep_name=sweep.name,
                        tracking_uri=uri, experiment_id=experiment_id, parent_id=parent_id,
                        cpus=sweep.resources.cpu, gpus=sweep.resources.gpu, store_uri=default_store_uri(root),
                        share_stages=sweep.share_stages, lease_actor=lease_actor_name(root, sweep))


def lease_actor_name(root: str, sweep: SweepConfig) -> str | None:
    """Object storage has no file lock: its leases live in one Ray actor per storage (named after it, so that
    sweeps on one Ray cluster share it). Local and shared file systems keep lease files in the store."""
    if not (sweep.share_stages and is_uri(root)):
        return None
    return f"stage-leases-{hashlib.sha256(default_store_uri(root).encode()).hexdigest()[:16]}"


def finished_already(sweep: SweepConfig, client: MlflowClient, experiment_id: str, uri: str, root: str,
                     experiment_path: str) -> SweepSummary | None:
    """The summary of a sweep that ran to its end with every trial finished (its parent run FINISHED, Tune's
    saved state all terminated), read without changing anything; None when there is work left."""
    parent = find_run(client, experiment_id, **{SWEEP_TAG: sweep.name, ROLE_TAG: "sweep"})
    if parent is None or parent.info.status != "FINISHED":
        return None
    context = trial_context(sweep, uri, experiment_id, parent.info.run_id, root)
    results = make_tuner(sweep, context, root, experiment_path).get_results()
    if len(results) == 0 or results.num_errors or results.num_terminated != len(results):
        return None
    summary = SweepSummary(results.num_terminated, 0, 0, parent.info.run_id, experiment_id, uri, sweep.name,
                           sweep.experiment_name, store=context.store_uri)
    summary.stages, summary.reused = stage_counts(child_runs(client, experiment_id, parent.info.run_id))
    return summary


def stage_counts(children) -> tuple[int, int]:
    """(stages the trials ran, of which taken from the stage store), from the trials' runs."""
    reused = [tag == "true" for run in children for key, tag in run.data.tags.items()
              if key.startswith("study.stage") and key.endswith(".reused")]
    return len(reused), sum(reused)


def open_experiment(sweep: SweepConfig) -> tuple[str, MlflowClient, str]:
    """The tracking URI made absolute, its client and the sweep's experiment id; an unusable URI is the
    user's to fix (exit 2)."""
    uri = absolute_tracking_uri(sweep.mlflow.tracking_uri)
    try:
        client = client_for(uri)
        experiment_id = ensure_experiment(client, sweep.experiment_name,
                                          default_artifact_location(uri, sweep.experiment_name))
    except (MlflowException, OSError) as error:
        raise ConfigError(f"mlflow.tracking_uri: cannot open {redacted(uri)} "
                          f"({excerpt(str(error).replace(uri, redacted(uri)), 300)})") from None
    return uri, client, experiment_id


def warm_start(sweep: SweepConfig, log) -> list:
    """The earlier trials search.warm_start names, read before Ray starts (a mistake exits 2 here)."""
    if not sweep.search.warm_start:
        return []
    from study.sweep.searcher import earlier_trials

    uri = absolute_tracking_uri(sweep.mlflow.tracking_uri)
    try:
        seeds, skipped = earlier_trials(sweep, client_for(uri), uri)
    except (MlflowException, OSError) as error:
        raise ConfigError(f"search.warm_start: cannot read {redacted(uri)} ({excerpt(str(error), 300)})") from None
    log(f"warm start: {len(seeds)} finished trial(s) of {sweep.search.warm_start!r} told to Optuna first"
        + (f" ({skipped} outside this space or without every objective, left out)" if skipped else "")
        + "; their stages are reused through the stage store")
    return seeds


# a Ray worker runs one trial after another: a new process per trial (starting Python, importing torch and
# MLflow) cost each trial seconds (benchmarks/scale.py measures both)
REUSE_WORKERS = True


def make_tuner(sweep: SweepConfig, context: TrialContext, root: str, restore_from: str | None,
               callbacks=(), seeds=()) -> tune.Tuner:
    """A new Tuner for the sweep (Optuna told ``seeds`` first), or the saved one at ``restore_from``."""
    trainable = tune.with_resources(tune.with_parameters(tune_trial, context=context),
                                    {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu})
    if restore_from:
        return tune.Tuner.restore(restore_from, trainable, resume_errored=True)

    def name(trial) -> str:
        return labelled(trial_config(trial.config, context), trial.config, context.varied, trial.trial_id)

    return tune.Tuner(
        trainable, param_space=param_space(sweep),
        tune_config=tune.TuneConfig(search_alg=search_algorithm(sweep, root, seeds),
                                    scheduler=trial_scheduler(sweep, root),
                                    num_samples=sweep.search.num_samples,
                                    max_concurrent_trials=sweep.max_concurrent if sweep.search.kind == "optuna" else None,
                                    reuse_actors=REUSE_WORKERS,
                                    trial_dirname_creator=lambda trial: trial.trial_id, trial_name_creator=name),
        run_config=tune.RunConfig(name=sweep.name, storage_path=root, verbose=1,
                                  progress_reporter=console_reporter(sweep), callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(max_failures=sweep.retries)))



def fit(tuner: tune.Tuner) -> tuple[int, int, dict[str, str], int]:
    """Run the trials: (finished, failed, why each failed trial ended by Tune id, the signal that stopped the
    sweep or 0)."""
    finished = failed = 0
    reasons: dict[str, str] = {}
    with StopSignals() as stop:
        try:
            results = tuner.fit()
            finished, failed = results.num_terminated, results.num_errors
            reasons = {result.metrics.get("trial_id", result.path.rstrip("/").rsplit("/", 1)[-1]):
                       "".join(traceback.format_exception(result.error))
                       for result in results if result.error is not None}
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            stop.received = stop.received or signal.SIGINT
    return finished, failed, reasons, stop.received


def close_sweep(sweep: SweepConfig, client: MlflowClient, summary: SweepSummary, reasons: dict[str, str], log,
                resume_command: str, root: str, reader=None) -> None:
    """Count what the trials did, close every unfinished run, and end the parent run: with the frontier when
    the sweep ran to its end (from ``reader``, the live frontier's rows), KILLED when a signal stopped it."""
    children = child_runs(client, summary.experiment_id, summary.parent_run_id)
    summary.stages, summary.reused = stage_counts(children)
    interrupted = summary.interrupted
    if interrupted:  # Tune reports stopped trials as TERMINATED: count the runs that really finished
        statuses = [run.info.status for run in children]
        summary.finished, summary.failed = statuses.count("FINISHED"), statuses.count("FAILED")
        log(f"sweep stopped by {signal.Signals(interrupted).name}; finished stages are kept in the stage store. "
            f"Resume with: {resume_command}")
    default_reason = (f"the sweep was stopped by {signal.Signals(interrupted).name} before the trial finished"
                      if interrupted else "the trial's worker died before the trial could record why")
    summary.stopped_early = mark_stopped_early(sweep, client, children, root)
    closed = close_dangling(client, summary.experiment_id, summary.parent_run_id, reasons, default_reason)
    if closed:
        log(f"marked {closed} unfinished trial run(s) KILLED")
    client.log_metric(summary.parent_run_id, "trials_finished", summary.finished)
    client.log_metric(summary.parent_run_id, "trials_failed", summary.failed)
    if summary.failed and not interrupted:
        log(f"{summary.failed} trial(s) failed (reasons on their runs, tag study.error); once the cause is fixed, "
            f"re-running resumes the sweep: failed trials run again, finished stages are reused: {resume_command}")
    if not interrupted:  # never a frontier from a partial sweep
        log_frontier(client, summary.experiment_id, summary.parent_run_id, sweep.search.objectives, log=log,
                     reference_point=sweep.search.reference_point, settings=sorted(varied_settings(sweep)),
                     reader=reader)
    if interrupted:
        client.set_terminated(summary.parent_run_id, "KILLED")
    elif summary.failed and not summary.finished:  # nothing to show: the sweep failed, whatever each trial says
        finish(client, summary.parent_run_id, error=f"every trial failed ({summary.failed}); the reasons are on "
                                                    f"the trials' runs (tag {ERROR_TAG})")
    else:
        finish(client, summary.parent_run_id)  # FINISHED, without the error an earlier attempt left


def mark_stopped_early(sweep: SweepConfig, client: MlflowClient, children, root: str) -> int:
    """End the runs of trials the scheduler stopped KILLED, tagged with the rung and why (they stay in the
    frontier table, marked); returns how many there are."""
    if sweep.scheduler.kind != "pareto_halving":
        return 0
    from study.sweep.halving import stopped_early

    stopped = stopped_early(root, sweep.name)
    s = sweep.scheduler
    for run in children:
        rung = stopped.get(run.data.tags.get(TRIAL_TAG, ""))
        if rung is None:
            continue
        why = (f"rung {rung}: stopped after stage {rung - 1} by scheduler.kind pareto_halving, not among the best "
               f"1/{s.reduction_factor:g} (Pareto rank) of the trials that reached that stage")
        client.set_tag(run.info.run_id, STOPPED_TAG, str(rung))
        client.set_tag(run.info.run_id, KILLED_TAG, why)
        if run.info.status != "KILLED":
            client.set_terminated(run.info.run_id, "KILLED")
    return len(stopped)


def check_resources(sweep: SweepConfig, nodes: list[dict] | None = None) -> None:
    """Fail fast when no node can ever hold one trial: Tune would otherwise wait forever. Counts ``nodes``
    (this machine, before a local Ray starts) or the nodes that are up and, on a cluster with an autoscaler,
    the node types it can launch."""
    if nodes is None:
        import ray

        nodes = [dict(node["Resources"]) for node in ray.nodes() if node["Alive"]]
        try:  # the autoscaler publishes its node types in the GCS (Ray's own libraries read it the same way)
            from ray._private.state import state

            config = state.get_cluster_config()
            nodes += [dict(group.resources) for group in (config.node_group_configs if config else [])
                      if group.max_count != 0]
        except Exception:  # noqa: BLE001 - no autoscaler information: judge by the live nodes
            pass
    problem = unfit(sweep, nodes)
    if problem:
        raise ConfigError(f"{problem}; lower resources.cpu / resources.gpu or add larger nodes")


