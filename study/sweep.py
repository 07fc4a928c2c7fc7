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
import os
import shlex
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from study.configio import ConfigError, bounded, excerpt, load_tree, set_path, validate
from study.sweep_config import SweepConfig, trial_tree, validate_space

EXIT_CONFIG = 2


# --- configuration -------------------------------------------------------------------------------------
def load_sweep(path: Path, overrides: list[str], tracking_uri: str | None = None, storage: str | None = None,
               max_concurrent: int | None = None) -> SweepConfig:
    tree = load_tree(path, overrides)
    flags = {"mlflow.tracking_uri": ("--tracking-uri", tracking_uri), "storage": ("--storage", storage),
             "max_concurrent": ("--max-concurrent", max_concurrent)}
    for key, (flag, value) in flags.items():
        if value is not None:
            set_path(tree, key, value, where=flag)
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
    lines.extend(describe_cost(sweep))
    lines.append(describe_precision(sweep))
    return "\n".join(lines)


def describe_precision(sweep: SweepConfig) -> str:
    """The precision the trials will use on this machine (each node decides for itself, the same way)."""
    import torch

    from study.runtime import resolve_precision

    requested = {str(tree.get("precision", "auto")) for tree in
                 [sweep.base, *[trial_tree(sweep.base, point) for point in sweep.grid_points()]]}
    device = torch.device("cuda" if sweep.resources.gpu and torch.cuda.is_available() else "cpu")
    return "; ".join(resolve_precision(name, device).describe() for name in sorted(requested)) + " on this machine"


def spaced(number: int) -> str:
    return f"{number:,}".replace(",", " ")


def describe_cost(sweep: SweepConfig) -> list[str]:
    """Training steps planned and distinct after stage sharing, overall and per prior family."""
    from study.config import TrialConfig
    from study.stages import training_cost

    if any(dim.kind != "grid" for dim in sweep.space.values()):
        return ["training steps: sampled dimensions, so sharing is known only as trials are drawn"]
    configs = [TrialConfig.model_validate(trial_tree(sweep.base, point))
               for point in sweep.grid_points() for _ in range(sweep.search.num_samples)]
    cost = training_cost(configs)
    if not sweep.share_stages:
        cost = {family: (planned, planned) for family, (planned, _) in cost.items()}

    def line(planned: int, distinct: int) -> str:
        return f"{spaced(planned)} planned, {spaced(distinct)} distinct ({planned / max(distinct, 1):.1f}×)"

    shown = [f"training steps: {line(*cost.pop('all'))}" + ("" if sweep.share_stages else " (share_stages: false)")]
    shown += [f"  {family}: {line(*value)}" for family, value in sorted(cost.items())]
    return shown


# --- the trainable (runs in a Ray worker) ---------------------------------------------------------------
SHORT_FAMILY = {"flowavenet": "flow", "wavenet": "wn", "flowavenet_nc": "flow-nc", "wavenet_nc": "wn-nc",
                "scorenet": "score"}
SHORT_SCHEDULE = {"scratch": "scratch", "from_clean": "ft", "chained": "chain"}
NAMED_BY_DEFAULT = {"prior.name", "schedule.sigma", "schedule.kind"}  # already in every label


def short_value(value) -> str:
    """A value as a label shows it: floats to 3 digits, paths by their last part, at most 16 characters."""
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value).rstrip("/").rsplit("/", 1)[-1]
    return text if len(text) <= 16 else text[:15] + "…"


def leaves(key: str, value) -> dict[str, object]:
    """The dotted settings one space value assigns (a ``variant`` mapping assigns from the top level)."""
    if not isinstance(value, dict):
        return {key: value}
    prefix = "" if key == "variant" else key + "."
    flat = {}
    for name, inner in value.items():
        flat.update(leaves(f"{prefix}{name}", inner))
    return flat


def varied_settings(sweep: SweepConfig) -> set[str]:
    """The dotted settings whose value differs between trials: a scalar dimension's key, and for mapping
    values (a prior, a variant) the leaves that differ between the dimension's values."""
    varied = set()
    for key, dim in sweep.space.items():
        if dim.kind not in ("grid", "choice") or not any(isinstance(v, dict) for v in dim.values):
            varied.add(key)
            continue
        assigned = [leaves(key, value) for value in dim.values]
        names = set().union(*assigned)
        varied |= {name for name in names if len({repr(a.get(name, "<unset>")) for a in assigned}) > 1}
    return varied


def trial_label(cfg, params: dict, varied: set[str]) -> str:
    """What tells trials apart, first and short (MLflow's run tree cuts names at about 15 characters):
    family, σ*, schedule, then every other varied setting as ``leaf=value``, e.g. ``flow σ*0.077 ft lr=0.001``."""
    words = [SHORT_FAMILY.get(cfg.prior.name, cfg.prior.name), f"σ*{cfg.schedule.sigma:g}",
             SHORT_SCHEDULE.get(cfg.schedule.kind, cfg.schedule.kind)]
    for key, value in params.items():
        words += [f"{name.rsplit('.', 1)[-1]}={short_value(v)}" for name, v in leaves(key, value).items()
                  if name in varied and name not in NAMED_BY_DEFAULT]
    return " ".join(words)


def labelled(cfg, params: dict, varied: set[str], tune_id: str) -> str:
    """The trial's name in MLflow and on the console: its label and the end of Tune's id (for repeats)."""
    return f"{trial_label(cfg, params, varied)} · {tune_id[-5:]}"


class NoColumns(dict):
    """An empty column mapping that Tune's reporter takes as given (an empty one makes it show every raw
    parameter, a ``variant`` mapping as a cut-off dict)."""

    def __bool__(self) -> bool:
        return True


def console_reporter(sweep: SweepConfig):
    """Tune's progress table: the trial's label as its name (it already names every varied key), its status,
    the stage it reached and the objectives."""
    from ray.tune import CLIReporter

    return CLIReporter(metric_columns={"stage": "stage", **{name: name for name in sweep.search.objectives}},
                       parameter_columns=NoColumns(), max_report_frequency=30, max_column_length=40,
                       sort_by_metric=False)


def tune_trial(params: dict, *, base: dict, varied: set[str], sweep_name: str, tracking_uri: str,
               experiment_id: str, parent_id: str, cpus: float, gpus: float, store_uri: str,
               lease_actor: str | None) -> None:
    """Ray Tune function trainable: one trial, tracked in its own MLflow child run.

    Its stages live in the stage store ``store_uri`` (shared by every trial of every sweep on that storage,
    or private to the trial when ``lease_actor`` is None), so a restarted trial reuses what it finished.
    Each stage's metrics are logged once per step, even when the trial runs again after an interruption.
    """
    import ray
    import torch
    from ray import tune

    from study.config import TrialConfig
    from study.leases import LeaseTable, RayLeases
    from study.runtime import cpu_capability, resolve_precision
    from study.store import StageStore
    from study.tracking import (CONFIG_TAG, SWEEP_TAG, client_for, finish, flatten, log_folder, log_metrics,
                                logged_steps, open_child)
    from study.trial import run_trial, trial_id

    context = tune.get_context()
    cfg = TrialConfig.model_validate(trial_tree(base, params))
    use_gpu = gpus > 0 and torch.cuda.is_available()
    cfg = cfg.model_copy(update={"threads": max(1, int(cpus)), "device": "cuda" if use_gpu else "cpu"})
    out_dir = Path(context.get_trial_dir()) / "work"
    client = client_for(tracking_uri)
    key = context.get_trial_id()
    run_id, reattached = open_child(client, experiment_id, parent_id, key, labelled(cfg, params, varied, key),
                                    flatten(cfg.model_dump(mode="json", exclude={"threads", "device"})),
                                    {CONFIG_TAG: trial_id(cfg), SWEEP_TAG: sweep_name})

    # where the trial ran (it may move to another node after a restore)
    client.set_tag(run_id, "study.node_id", ray.get_runtime_context().get_node_id())
    client.set_tag(run_id, "study.node_ip", ray.util.get_node_ip_address())
    client.set_tag(run_id, "study.precision", resolve_precision(cfg.precision, torch.device(cfg.device)).used)
    client.set_tag(run_id, "study.cpu_capability", cpu_capability())
    logged = logged_steps(client, run_id, "stage") if reattached else set()
    if reattached:
        print(f"re-attached to MLflow run {run_id}; stages already logged: {sorted(logged)}")

    def report(metrics: dict, stage_dir: Path) -> None:
        stage = int(metrics["stage"])
        if stage not in logged:  # a re-run trial reports its reused stages again: log each step once
            client.set_tag(run_id, f"study.stage{stage}.key", metrics["stage_key"])
            client.set_tag(run_id, f"study.stage{stage}.reused", str(bool(metrics["stage_reused"])).lower())
            log_metrics(client, run_id, {k: v for k, v in metrics.items() if k != "stage_key"}, step=stage)
            log_folder(client, run_id, stage_dir, f"stage{stage}")
            logged.add(stage)
        tune.report(metrics)

    store = StageStore(store_uri if lease_actor else f"{store_uri}/private/{trial_id(cfg)}")
    leases = RayLeases(lease_actor) if lease_actor else LeaseTable()
    try:
        run_trial(cfg, out_dir, report, store=store, leases=leases, holder=f"{key}@{ray.util.get_node_ip_address()}")
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


# --- the driver --------------------------------------------------------------------------------------------
class StopSignals:
    """Makes SIGINT and SIGTERM stop the sweep the same graceful way, and remembers which one did.

    Tune installs its own SIGINT handler inside ``fit()`` and, on the first Ctrl-C, ends the run cleanly and
    puts back the handler it found, which is ours; so if ours is in place after ``fit()`` returns, Tune was
    interrupted. SIGTERM (sent by Kubernetes, Slurm and ``timeout``) is forwarded to Tune's handler. A second
    signal reaches our handler, which raises KeyboardInterrupt to stop at once.
    """

    def __init__(self):
        self.received = 0

    def _on_sigint(self, signum, frame):
        self.received = self.received or signum
        raise KeyboardInterrupt

    def _on_sigterm(self, signum, frame):
        self.received = signal.SIGTERM
        current = signal.getsignal(signal.SIGINT)
        if callable(current) and current != self.on_sigint:
            current(signal.SIGINT, frame)  # Tune's graceful stop
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        self.on_sigint = self._on_sigint
        self.previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGINT, self.on_sigint)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc) -> bool:
        if not self.received and signal.getsignal(signal.SIGINT) == self.on_sigint:
            self.received = signal.SIGINT  # Tune caught a Ctrl-C and restored our handler
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False


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

    def describe(self) -> str:
        """The one summary a sweep ends with: how it ended, what was reused, and where the results are."""
        minutes, seconds = divmod(round(self.seconds), 60)
        how = (f"stopped by {signal.Signals(self.interrupted).name}" if self.interrupted else "done")
        link = f"#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"  # the model-training view
        if self.tracking_uri.startswith("http"):
            open_it = f"  open:    {self.tracking_uri.rstrip('/')}/{link}"
        else:
            open_it = (f"  open:    mlflow ui --backend-store-uri {self.tracking_uri} --host 127.0.0.1 --port 5000\n"
                       f"           then http://127.0.0.1:5000/{link}")
        return "\n".join([
            f"sweep {self.name!r} {how} after {minutes} min {seconds} s: {self.finished} trials finished, "
            f"{self.failed} failed; {self.reused} of {self.stages} stages reused from the stage store",
            f"  results: MLflow experiment {self.experiment!r}, sweep run {self.parent_run_id} (trials nested "
            f"under it; frontier.png, dilemma.png, study_summary.csv on it); stages in {self.store}",
            open_it])


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


def run_sweep(sweep: SweepConfig, sweep_file: Path | None = None, mode: str = "auto", log=print,
              resume_command: str | None = None) -> SweepSummary:
    """Run (``auto``: resume if this sweep's state exists, else start), ``resume`` or ``restart`` a sweep.
    ``resume_command`` is what the user is told to run after an interruption."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # si_sdr exists only after the last stage; earlier stage results legitimately lack it
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # one checkpoint per stage is the design; Tune's "snapshotting too often" warning is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's newer console output infers its columns and cannot be told which; the classic reporter can
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    from mlflow.exceptions import MlflowException

    from study.config import TrialConfig
    from study.frontier import log_frontier
    from study.leases import start_lease_actor
    from study.store import default_store_uri
    from study.tracking import (absolute_tracking_uri, child_runs, client_for, close_dangling,
                                default_artifact_location, ensure_experiment, open_parent)

    started = time.perf_counter()
    root = storage_root(sweep)
    experiment_path = f"{root}/{sweep.name}"
    can_restore = tune.Tuner.can_restore(experiment_path)
    if mode == "resume" and not can_restore:
        raise ConfigError(f"--resume: no saved state of sweep {sweep.name!r} under {root}")
    restore = can_restore and mode != "restart"
    if not ray.is_initialized():
        if sweep.ray.address:
            ray.init(address=sweep.ray.address, include_dashboard=False)
        else:
            ray.init(include_dashboard=False)
    check_resources(sweep)
    if mode == "restart" and can_restore and "://" not in root:
        shutil.rmtree(experiment_path)
    uri = absolute_tracking_uri(sweep.mlflow.tracking_uri)
    try:
        client = client_for(uri)
        experiment_id = ensure_experiment(client, sweep.experiment_name,
                                          default_artifact_location(uri, sweep.experiment_name))
    except (MlflowException, OSError) as error:
        raise ConfigError(f"mlflow.tracking_uri: cannot open {uri} ({excerpt(str(error), 300)})") from None
    parent_id = open_parent(client, experiment_id, sweep.name, sweep_file, resume=restore)
    log(f"MLflow: experiment {sweep.experiment_name!r} ({experiment_id}), sweep run {parent_id}")
    base, varied = absolute_paths(sweep.base), varied_settings(sweep)
    lease_actor = leases = None
    if sweep.share_stages:  # the handle keeps the actor alive for the whole sweep
        lease_actor = f"stage-leases-{sweep.name}"
        leases = start_lease_actor(lease_actor)
    trainable = tune.with_resources(
        tune.with_parameters(tune_trial, base=base, varied=varied, sweep_name=sweep.name, tracking_uri=uri,
                             experiment_id=experiment_id, parent_id=parent_id, cpus=sweep.resources.cpu,
                             gpus=sweep.resources.gpu, store_uri=default_store_uri(root), lease_actor=lease_actor),
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
                                        trial_dirname_creator=lambda trial: trial.trial_id,
                                        trial_name_creator=lambda trial: labelled(
                                            TrialConfig.model_validate(trial_tree(base, trial.config)),
                                            trial.config, varied, trial.trial_id)),
            run_config=tune.RunConfig(name=sweep.name, storage_path=root, verbose=1,
                                      progress_reporter=console_reporter(sweep),
                                      failure_config=tune.FailureConfig(max_failures=sweep.failure.max_failures)))
    status = "FINISHED"
    finished = failed = 0
    reasons: dict[str, str] = {}  # Tune trial id -> why it ended without finishing
    with StopSignals() as stop:
        try:
            results = tuner.fit()
            finished, failed = results.num_terminated, results.num_errors
            reasons = {result.metrics.get("trial_id", result.path.rstrip("/").rsplit("/", 1)[-1]):
                       "".join(traceback.format_exception(result.error))
                       for result in results if result.error is not None}
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            stop.received = stop.received or signal.SIGINT
    interrupted = stop.received
    if leases is not None:
        ray.kill(leases)
    children = child_runs(client, experiment_id, parent_id)
    reused = [tag == "true" for run in children for key, tag in run.data.tags.items()
              if key.startswith("study.stage") and key.endswith(".reused")]
    if interrupted:
        status = "KILLED"  # Tune reports stopped trials as TERMINATED: count the runs that really finished
        statuses = [run.info.status for run in children]
        finished, failed = statuses.count("FINISHED"), statuses.count("FAILED")
        resume_command = resume_command or shlex.join(["python", "-m", "study.sweep", str(sweep_file), "--resume"])
        log(f"sweep stopped by {signal.Signals(interrupted).name}; finished stages are kept in the stage store. "
            f"Resume with: {resume_command}")
    default_reason = (f"the sweep was stopped by {signal.Signals(interrupted).name} before the trial finished"
                      if interrupted else "the trial's worker died before the trial could record why")
    closed = close_dangling(client, experiment_id, parent_id, reasons, default_reason)
    if closed:
        log(f"marked {closed} unfinished trial run(s) KILLED")
    client.log_metric(parent_id, "trials_finished", finished)
    client.log_metric(parent_id, "trials_failed", failed)
    if status == "FINISHED":  # never a frontier from a partial sweep
        log_frontier(client, experiment_id, parent_id, sweep.search.objectives, log=log)
    client.set_terminated(parent_id, status)
    return SweepSummary(finished, failed, interrupted, parent_id, experiment_id, uri, sweep.name,
                        sweep.experiment_name, len(reused), sum(reused), time.perf_counter() - started,
                        default_store_uri(root))


def check_resources(sweep: SweepConfig) -> None:
    """Fail fast when no node can ever hold one trial: Tune would otherwise wait forever. Counts the nodes
    that are up and, on a cluster with an autoscaler, the node types it can launch."""
    import ray

    need = {"CPU": sweep.resources.cpu, "GPU": sweep.resources.gpu}
    nodes = [dict(node["Resources"]) for node in ray.nodes() if node["Alive"]]
    try:  # the autoscaler publishes its node types in the GCS (Ray's own libraries read it the same way)
        from ray._private.state import state

        config = state.get_cluster_config()
        nodes += [dict(group.resources) for group in (config.node_group_configs if config else [])
                  if group.max_count != 0]
    except Exception:  # noqa: BLE001 - no autoscaler information: judge by the live nodes
        pass
    if any(all(node.get(name, 0) >= amount for name, amount in need.items() if amount) for node in nodes):
        return
    largest = max(nodes, key=lambda node: (node.get("GPU", 0), node.get("CPU", 0)), default={})
    raise ConfigError(f"resources: one trial asks for {need['CPU']:g} CPU and {need['GPU']:g} GPU, but no node "
                      f"can offer that (the largest has {largest.get('CPU', 0):g} CPU and {largest.get('GPU', 0):g} "
                      "GPU); lower resources.cpu / resources.gpu or add larger nodes")


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
        print(f"error: {bounded(str(error))}", file=sys.stderr)
        return EXIT_CONFIG
    print(describe(sweep))
    if args.dry_run:
        return 0
    given = [arg for arg in (sys.argv[1:] if argv is None else argv) if arg not in ("--resume", "--restart")]
    resume_command = shlex.join(["python", "-m", "study.sweep", *given, "--resume"])  # with every flag given
    try:
        summary = run_sweep(sweep, args.sweep, "resume" if args.resume else "restart" if args.restart else "auto",
                            resume_command=resume_command)
    except ConfigError as error:
        print(f"error: {bounded(str(error))}", file=sys.stderr)
        return EXIT_CONFIG
    print("\n" + summary.describe())
    if summary.interrupted:
        return 128 + summary.interrupted  # 130 for SIGINT, 143 for SIGTERM, as shells report them
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
