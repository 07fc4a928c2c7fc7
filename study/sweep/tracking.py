"""MLflow bookkeeping for sweeps: one parent run per sweep, one nested child run per trial.

Runs are found again by tags rather than remembered in memory, so an interrupted sweep that is resumed
re-attaches to its parent and child runs and continues their metric history instead of opening duplicates
(Ray's MLflowLoggerCallback keeps its trial→run map in memory and duplicates runs after a restore).
MLflow forbids "@" in metric names, so ``auroc@0.01`` is logged as ``auroc_at_0.01``.
"""
from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from filelock import FileLock
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

SWEEP_TAG = "study.sweep"
ROLE_TAG = "study.role"
TRIAL_TAG = "study.trial_id"
CONFIG_TAG = "study.config_id"
PARENT_TAG = "mlflow.parentRunId"
ERROR_TAG = "study.error"
KILLED_TAG = "study.killed"
STOPPED_TAG = "study.stopped_early"  # the rung where scheduler.kind pareto_halving stopped the trial
PACKAGES = ("torch", "torchaudio", "ray", "optuna", "mlflow", "torchmetrics", "numpy", "pydantic")


def mlflow_name(metric: str) -> str:
    return metric.replace("@", "_at_")


def study_name(logged: str) -> str:
    """The inverse of :func:`mlflow_name`: a metric as MLflow holds it, named as objectives name it."""
    return logged.replace("_at_", "@")


def redacted(uri: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``: a URI fit to print or log."""
    scheme, sep, rest = str(uri).partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return str(uri)
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


DATABASES = ("postgresql", "mysql", "mssql")  # tracking URIs that are a database MLflow opens directly


def unreachable(uri: str) -> str | None:
    """Why a database tracking URI cannot be used (one line), or None. Asked before Ray starts: MLflow itself
    retries for minutes and then ends in a traceback."""
    if not uri.split(":", 1)[0].split("+", 1)[0] in DATABASES:
        return None
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 10}
                                          if uri.startswith("postgresql") else {})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure to connect is the user's to fix
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        return f"cannot reach {redacted(uri)} ({reason.replace(uri, redacted(uri))[:300]})"
    return None


def absolute_tracking_uri(uri: str) -> str:
    """``sqlite:///rel.db`` -> ``sqlite:////abs/rel.db`` so trials in other working directories find it."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts beside a sqlite database (``<db dir>/mlruns/<experiment>``); a server decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlruns" / experiment).resolve().as_uri()
    return None


def client_for(uri: str) -> MlflowClient:
    """A client whose store is ready. A sqlite file is created and its schema migrated under a file lock:
    MLflow does both on first use, and two sweeps starting at once in an empty folder would otherwise race
    (raw sqlite errors, or a half-created database that every later sweep fails on)."""
    uri = absolute_tracking_uri(uri)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    with FileLock(uri[len("sqlite:///"):] + ".lock", timeout=300):
        return MlflowClient(tracking_uri=uri)  # opening the store creates and upgrades the schema


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except MlflowException:  # created concurrently by someone else
        return client.get_experiment_by_name(name).experiment_id


def find_run(client: MlflowClient, experiment_id: str, **tags):
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client.search_runs([experiment_id], filter_string=query, max_results=2, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


def environment_tags() -> dict[str, str]:
    tags = {"study.python": platform.python_version()}
    for package in PACKAGES:
        try:
            tags[f"study.version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
        if commit:
            tags["mlflow.source.git.commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return tags


def open_parent(client: MlflowClient, experiment_id: str, sweep_name: str, sweep_file: Path | None, resume: bool) -> str:
    """The sweep's parent run: the existing one when resuming, else a new one carrying the YAML and versions."""
    if resume:
        run = find_run(client, experiment_id, **{SWEEP_TAG: sweep_name, ROLE_TAG: "sweep"})
        if run is not None:
            client.update_run(run.info.run_id, status="RUNNING")
            return run.info.run_id
    run = client.create_run(experiment_id, run_name=sweep_name,
                            tags={SWEEP_TAG: sweep_name, ROLE_TAG: "sweep", **environment_tags()})
    if sweep_file is not None:
        client.log_artifact(run.info.run_id, str(sweep_file))
    return run.info.run_id


REPLACED_TAG = "study.replaced_by"  # on an earlier sweep run that --restart replaced: the run that replaced it


def retire_earlier_parents(client: MlflowClient, experiment_id: str, sweep_name: str, current: str) -> list[str]:
    """Keep one sweep run per sweep name: every other one (an attempt ``--restart`` threw away) is renamed
    ``<name> (replaced)``, tagged with the run that replaced it, and no longer found as the sweep's run; its
    trials stay nested under it. Returns their ids."""
    query = f"tags.`{SWEEP_TAG}` = '{sweep_name}' and tags.`{ROLE_TAG}` = 'sweep'"
    earlier = [run for run in client.search_runs([experiment_id], filter_string=query, max_results=1000)
               if run.info.run_id != current]
    for run in earlier:
        client.set_tag(run.info.run_id, ROLE_TAG, "replaced")
        client.set_tag(run.info.run_id, REPLACED_TAG, current)
        client.set_tag(run.info.run_id, "mlflow.runName", f"{sweep_name} (replaced)")
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")
    return [run.info.run_id for run in earlier]


def open_child(client: MlflowClient, experiment_id: str, parent_id: str, trial_key: str, run_name: str,
               params: dict[str, str], tags: dict[str, str]) -> tuple[str, bool]:
    """Find the child run of ``trial_key`` under ``parent_id`` or create it. Returns (run id, re-attached?)."""
    run = find_run(client, experiment_id, **{PARENT_TAG: parent_id, TRIAL_TAG: trial_key})
    if run is not None:
        client.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id, True
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={PARENT_TAG: parent_id, TRIAL_TAG: trial_key, ROLE_TAG: "trial", **tags})
    for chunk_start in range(0, len(params), 100):  # MLflow accepts at most 100 params per batch
        items = list(params.items())[chunk_start:chunk_start + 100]
        client.log_batch(run.info.run_id, params=[Param(k, v[:6000]) for k, v in items])
    return run.info.run_id, False


def log_metrics(client: MlflowClient, run_id: str, metrics: dict, step: int) -> None:
    now = int(time.time() * 1000)
    numeric = [Metric(mlflow_name(k), float(v), now, step) for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for start in range(0, len(numeric), 1000):
        client.log_batch(run_id, metrics=numeric[start:start + 1000])
    for key, value in metrics.items():
        if isinstance(value, str):
            client.set_tag(run_id, f"study.{key}", value[:5000])


def logged_steps(client: MlflowClient, run_id: str, metric: str) -> set[int]:
    """The steps at which ``metric`` already has a value in the run."""
    return {m.step for m in client.get_metric_history(run_id, mlflow_name(metric))}


def log_folder(client: MlflowClient, run_id: str, folder: Path, artifact_path: str | None = None,
               suffixes=(".png", ".csv", ".json", ".wav", ".yaml", ".txt")) -> None:
    """Upload the result files of ``folder`` (not checkpoints), keeping sub-folders (``.txt``: why something
    is missing, e.g. ``audio/diverged.txt``)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in suffixes:
            relative = path.parent.relative_to(folder).as_posix()
            target = "/".join(p for p in (artifact_path, relative) if p and p != ".") or None
            client.log_artifact(run_id, str(path), target)


def finish(client: MlflowClient, run_id: str, error: str | None = None, killed: str | None = None) -> None:
    """End a run FINISHED, FAILED (``error``: the traceback) or KILLED (``killed``: why); a finished run
    loses the error tag an earlier, interrupted attempt left on it."""
    if error is not None:
        client.set_tag(run_id, ERROR_TAG, error[-5000:])  # the tail holds the final exception
        client.log_text(run_id, error, "error.txt")
        status = RunStatus.FAILED
    elif killed is not None:
        client.set_tag(run_id, KILLED_TAG, killed[-5000:])
        status = RunStatus.KILLED
    else:
        for tag in (ERROR_TAG, KILLED_TAG):
            if tag in client.get_run(run_id).data.tags:
                client.delete_tag(run_id, tag)
        status = RunStatus.FINISHED
    client.set_terminated(run_id, RunStatus.to_string(status))


def close_dangling(client: MlflowClient, experiment_id: str, parent_id: str, reasons: dict[str, str],
                   default_reason: str) -> int:
    """End KILLED the child runs still RUNNING (their trial died without reporting: a killed worker, a lost
    node, a stopped sweep), each with why in ``study.killed``: ``reasons`` by Tune trial id, else
    ``default_reason``. Returns how many."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' and "
                                                             "attributes.status = 'RUNNING'")
    for run in runs:
        finish(client, run.info.run_id, killed=reasons.get(run.data.tags.get(TRIAL_TAG, ""), default_reason))
    return len(runs)


def child_runs(client: MlflowClient, experiment_id: str, parent_id: str, since_ms: int | None = None) -> list:
    """The sweep's trial runs, newest first; with ``since_ms`` only those still running or ended at or after
    that time (what a view that read the rest before needs: two queries, MLflow's filter has no OR)."""
    mine = f"tags.`{PARENT_TAG}` = '{parent_id}'"
    if since_ms is None:
        return all_runs(client, experiment_id, mine)
    found = {run.info.run_id: run for query in (f"{mine} and attributes.status = 'RUNNING'",
                                                f"{mine} and attributes.end_time >= {int(since_ms)}")
             for run in all_runs(client, experiment_id, query)}
    return sorted(found.values(), key=lambda run: (-run.info.start_time, run.info.run_id))


def all_runs(client: MlflowClient, experiment_id: str, query: str) -> list:
    """Every run ``query`` matches, page by page (a sweep may have more runs than one page holds)."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=query, max_results=5_000, page_token=token)
        runs += page
        token = page.token
        if not token:
            return runs
