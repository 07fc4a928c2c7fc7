"""Run a study: ``python -m study.sweep SWEEP.yaml`` — Ray Tune trials, MLflow runs, the Pareto frontier.

    python -m study.sweep sweeps/quickstart.yaml [--dry-run] [--resume | --restart] [--set key=value …]
                          [--tracking-uri URI] [--storage PATH] [--max-concurrent N]

Every trial is :func:`study.trial.run_trial` inside a Ray Tune function trainable. The trial logs to its own
MLflow child run (found again by its Ray trial id after an interruption), reports one Tune result and
checkpoint per stage, and ends FINISHED or FAILED with its error attached. Any configuration mistake exits
with status 2 before Ray, MLflow or any folder is touched.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from study.configio import ConfigError, apply_override, read_yaml, validate
from study.sweep_config import SweepConfig, trial_tree, validate_space

EXIT_CONFIG = 2


# --- configuration -------------------------------------------------------------------------------------
def load_sweep(path: Path, overrides: list[str], tracking_uri: str | None = None, storage: str | None = None,
               max_concurrent: int | None = None) -> SweepConfig:
    tree = read_yaml(path)
    for assignment in overrides:
        apply_override(tree, assignment)
    if tracking_uri:
        tree.setdefault("mlflow", {})["tracking_uri"] = tracking_uri
    if storage:
        tree["storage"] = storage
    if max_concurrent is not None:
        tree["max_concurrent"] = max_concurrent
    sweep = validate(SweepConfig, tree, str(path))
    validate_space(sweep)
    return sweep


def describe(sweep: SweepConfig) -> str:
    """What --dry-run prints: the number of trials and the expanded grid."""
    lines = [f"sweep {sweep.name!r}: {sweep.num_trials()} trials ({sweep.search.kind} search"
             + (f", {sweep.search.sampler} sampler" if sweep.search.kind == "optuna" else "")
             + f"; objectives {sweep.search.objectives}; {sweep.resources.cpu:g} CPU"
             + (f" + {sweep.resources.gpu:g} GPU" if sweep.resources.gpu else "") + " per trial)"]
    sampled = {k: f"{d.kind}{list(d.values)}" for k, d in sweep.space.items() if d.kind != "grid"}
    points = sweep.grid_points() if sweep.search.kind != "optuna" else [{}]
    for i, point in enumerate(points):
        shown = ", ".join(f"{k}={v}" for k, v in point.items()) or "(no grid dimensions)"
        lines.append(f"  {i + 1:>3}. {shown}")
    if sampled:
        lines.append("  sampled per trial: " + ", ".join(f"{k} ~ {v}" for k, v in sampled.items()))
    if sweep.search.num_samples > 1 and sweep.search.kind != "optuna":
        lines.append(f"  × {sweep.search.num_samples} samples each")
    return "\n".join(lines)


# --- the trainable (runs in a Ray worker) ---------------------------------------------------------------
def run_name(cfg) -> str:
    return f"{cfg.prior.name} σ*={cfg.schedule.sigma:g} {cfg.schedule.kind}"


def tune_trial(params: dict, *, base: dict, sweep_name: str, tracking_uri: str, experiment_id: str,
               parent_id: str, cpus: float, gpus: float) -> None:
    """Ray Tune function trainable: one trial, tracked in its own MLflow child run."""
    import ray
    import torch
    from ray import tune

    from study.config import TrialConfig
    from study.tracking import (CONFIG_TAG, SWEEP_TAG, client_for, finish, flatten, log_folder, log_metrics,
                                open_child)
    from study.trial import run_trial, trial_id

    context = tune.get_context()
    cfg = TrialConfig.model_validate(trial_tree(base, params))
    use_gpu = gpus > 0 and torch.cuda.is_available()
    cfg = cfg.model_copy(update={"threads": max(1, int(cpus)), "device": "cuda" if use_gpu else "cpu"})
    out_dir = Path(context.get_trial_dir()) / "work"
    client = client_for(tracking_uri)
    key = context.get_trial_id()
    run_id, reattached = open_child(client, experiment_id, parent_id, key, f"{run_name(cfg)} · {key[-5:]}",
                                    flatten(cfg.model_dump(mode="json", exclude={"threads", "device"})),
                                    {CONFIG_TAG: trial_id(cfg), SWEEP_TAG: sweep_name})

    def track_stage(metrics: dict, stage_dir: Path) -> None:
        log_metrics(client, run_id, metrics, step=int(metrics["stage"]))
        log_folder(client, run_id, stage_dir, f"stage{metrics['stage']}")

    # where the trial ran (it may move to another node after a restore)
    client.set_tag(run_id, "study.node_id", ray.get_runtime_context().get_node_id())
    client.set_tag(run_id, "study.node_ip", ray.util.get_node_ip_address())
    if reattached:  # stages finished before the interruption but never logged (killed in between)
        logged = {m.step for m in client.get_metric_history(run_id, "stage")}
        for done in sorted(out_dir.glob("stage*/metrics.json")):
            metrics = json.loads(done.read_text())
            if metrics["stage"] not in logged:
                track_stage(metrics, done.parent)
        print(f"re-attached to MLflow run {run_id}")

    def report(metrics: dict, stage_dir: Path) -> None:
        track_stage(metrics, stage_dir)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(stage_dir)))

    try:
        run_trial(cfg, out_dir, report)
        for name in ("metrics.json", "config.yaml", "si_sdr_per_level.png"):
            if (out_dir / name).is_file():
                client.log_artifact(run_id, str(out_dir / name))
        if (out_dir / "audio").is_dir():
            log_folder(client, run_id, out_dir / "audio", "audio")
        finish(client, run_id)
    except BaseException as error:  # noqa: BLE001 - the run must never be left RUNNING
        finish(client, run_id, error="".join(traceback.format_exception(error)))
        raise


# --- the driver --------------------------------------------------------------------------------------------
@dataclass
class SweepSummary:
    finished: int
    failed: int
    interrupted: int
    parent_run_id: str
    experiment_id: str
    tracking_uri: str


def param_space(sweep: SweepConfig) -> dict:
    from ray import tune

    make = {"grid": tune.grid_search, "choice": tune.choice, "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v), "randint": lambda v: tune.randint(*v)}
    return {key: make[dim.kind](list(dim.values)) for key, dim in sweep.space.items()}


def search_algorithm(sweep: SweepConfig):
    from ray.tune.search.basic_variant import BasicVariantGenerator

    search = sweep.search
    if search.kind != "optuna":  # a SearchAlgorithm: it limits concurrency itself
        return BasicVariantGenerator(random_state=search.seed, max_concurrent=sweep.max_concurrent or 0)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=search.seed),
               "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=search.seed),
               "gp": lambda: optuna.samplers.GPSampler(seed=search.seed)}[search.sampler]()
    metrics, modes = list(search.objectives), list(search.objectives.values())
    if len(metrics) == 1:
        metrics, modes = metrics[0], modes[0]
    return OptunaSearch(metric=metrics, mode=modes, sampler=sampler)


def trial_scheduler(sweep: SweepConfig):
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    s = sweep.scheduler
    if s.kind == "fifo":
        return FIFOScheduler()
    metric = s.metric or next(iter(sweep.search.objectives))
    mode = s.mode or sweep.search.objectives.get(metric, "max")
    return AsyncHyperBandScheduler(metric=metric, mode=mode, grace_period=s.grace_period,
                                   reduction_factor=s.reduction_factor, max_t=s.max_t)


def storage_root(sweep: SweepConfig) -> str:
    """Absolute local path, or a URI (s3://, gs://, …) left as is."""
    return sweep.storage if "://" in sweep.storage else str(Path(sweep.storage).expanduser().resolve())


def absolute_paths(base: dict) -> dict:
    """Resolve relative data paths on the driver: trials run in other working directories."""
    tree = dict(base)
    data = dict(tree.get("data", {}))
    for key in ("root", "cache_dir"):
        if data.get(key) and "://" not in str(data[key]):
            data[key] = str(Path(data[key]).expanduser().resolve())
    if data:
        tree["data"] = data
    return tree


def run_sweep(sweep: SweepConfig, sweep_file: Path | None = None, mode: str = "auto", log=print) -> SweepSummary:
    """Run (``auto``: resume if this sweep's state exists, else start), ``resume`` or ``restart`` a sweep."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # si_sdr exists only after the last stage; earlier stage results legitimately lack it
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # one checkpoint per stage is the design; Tune's "snapshotting too often" warning is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray
    from ray import tune

    from study.frontier import log_frontier
    from study.tracking import (absolute_tracking_uri, client_for, close_dangling, default_artifact_location,
                                ensure_experiment, open_parent)

    root = storage_root(sweep)
    experiment_path = f"{root}/{sweep.name}"
    can_restore = tune.Tuner.can_restore(experiment_path)
    if mode == "resume" and not can_restore:
        raise ConfigError(f"--resume: no saved state of sweep {sweep.name!r} under {root}")
    restore = can_restore and mode != "restart"
    if mode == "restart" and can_restore and "://" not in root:
        shutil.rmtree(experiment_path)
    uri = absolute_tracking_uri(sweep.mlflow.tracking_uri)
    client = client_for(uri)
    experiment_id = ensure_experiment(client, sweep.experiment_name,
                                      default_artifact_location(uri, sweep.experiment_name))
    parent_id = open_parent(client, experiment_id, sweep.name, sweep_file, resume=restore)
    log(f"MLflow: experiment {sweep.experiment_name!r} ({experiment_id}), sweep run {parent_id}")
    if not ray.is_initialized():
        if sweep.ray.address:
            ray.init(address=sweep.ray.address, include_dashboard=False)
        else:
            ray.init(include_dashboard=False)
    trainable = tune.with_resources(
        tune.with_parameters(tune_trial, base=absolute_paths(sweep.base), sweep_name=sweep.name, tracking_uri=uri,
                             experiment_id=experiment_id, parent_id=parent_id, cpus=sweep.resources.cpu,
                             gpus=sweep.resources.gpu),
        {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu})
    if restore:
        log(f"resuming sweep {sweep.name!r} from {experiment_path}")
        tuner = tune.Tuner.restore(experiment_path, trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space(sweep),
            tune_config=tune.TuneConfig(search_alg=search_algorithm(sweep), scheduler=trial_scheduler(sweep),
                                        num_samples=sweep.search.num_samples,
                                        max_concurrent_trials=sweep.max_concurrent if sweep.search.kind == "optuna" else None,
                                        trial_dirname_creator=lambda trial: trial.trial_id),
            run_config=tune.RunConfig(name=sweep.name, storage_path=root, verbose=1,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                      failure_config=tune.FailureConfig(max_failures=sweep.failure.max_failures)))
    status = "FINISHED"
    try:
        results = tuner.fit()
        finished, failed = results.num_terminated, results.num_errors
        interrupted = len(results) - finished - failed
    except KeyboardInterrupt:
        finished = failed = 0
        interrupted = -1
    if interrupted:
        status = "KILLED"
        log(f"sweep interrupted; resume with: python -m study.sweep {sweep_file or 'SWEEP.yaml'} --resume")
    closed = close_dangling(client, experiment_id, parent_id)
    if closed:
        log(f"marked {closed} unfinished trial run(s) KILLED")
    client.log_metric(parent_id, "trials_finished", finished)
    client.log_metric(parent_id, "trials_failed", failed)
    if status == "FINISHED":
        log_frontier(client, experiment_id, parent_id, sweep.search.objectives, log=log)
    client.set_terminated(parent_id, status)
    return SweepSummary(finished, failed, interrupted, parent_id, experiment_id, uri)


def ui_hint(summary: SweepSummary) -> str:
    return (f"Open the results:\n  mlflow ui --backend-store-uri {summary.tracking_uri} --host 127.0.0.1 --port 5000\n"
            f"  then http://127.0.0.1:5000/#/experiments/{summary.experiment_id}/runs (trials are nested under "
            f"the sweep run)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run a study of generative audio priors with Ray Tune and MLflow.")
    parser.add_argument("sweep", type=Path, help="sweep YAML (see sweeps/)")
    parser.add_argument("--dry-run", action="store_true", help="print the trials and exit without starting Ray")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue an interrupted sweep (the default if one exists)")
    group.add_argument("--restart", action="store_true", help="discard saved sweep state and start over")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a sweep field, e.g. --set base.training.steps=50")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default from the YAML: sqlite:///mlflow.db)")
    parser.add_argument("--storage", help="Ray Tune storage: a local path or a URI")
    parser.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.sweep, args.overrides, args.tracking_uri, args.storage, args.max_concurrent)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(describe(sweep))
    if args.dry_run:
        return 0
    try:
        summary = run_sweep(sweep, args.sweep, "resume" if args.resume else "restart" if args.restart else "auto")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"\n{summary.finished} trials finished, {summary.failed} failed"
          + (", sweep interrupted" if summary.interrupted else ""))
    print(ui_hint(summary))
    return 0 if summary.failed == 0 and not summary.interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
