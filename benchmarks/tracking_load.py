"""Tracking under load: N processes log at once what N trials log, against a real ``mlflow server`` on sqlite and
on PostgreSQL, side by side in one run on one machine. Every write is then read back and checked.

    python -m benchmarks.run --only tracking                  # 32 processes per backend, the README table
    python -m benchmarks.tracking_load --processes 8          # the same, directly

Each process logs one trial the way :func:`study.sweep.trainable.tune_trial` does: a run with its tags and every
flattened config param, then per stage two tags, one batch of metrics (per-source and per-σ included) and
the stage's result files, then the trial's result files and the end of the run. Client retries are off
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``), so a request that fails is counted, not hidden by a retry.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = 3
SOURCES = ("sin", "square", "saw", "triangle")
WORKER_TAG = "load.worker"


def trial_params() -> dict[str, str]:
    from study.config.schema import TrialConfig
    from study.sweep.tracking import flatten

    return flatten(TrialConfig().model_dump(mode="json", exclude={"threads", "device"}))


def stage_metrics(worker: int, stage: int) -> dict[str, float]:
    """About the metrics one stage of a trial reports, with values unique to (worker, stage, name)."""
    names = ["auroc", "logp_drop@0.01", "logp_drop@0.1", "auroc@0.01", "auroc@0.1", "train_seconds",
             "train_source_samples_per_s", "eval_seconds", "stage_sigma", "stage_reused", "stage_wait_seconds", "step",
             "si_sdr", "si_sdri", "sdr", "si_sdr_mixture", "auroc_complexity"]
    names += [f"{family}/{s}" for family in ("auroc", "bits_per_sample", "si_sdr", "sdr", "auroc_complexity")
              for s in SOURCES]
    return {name: worker * 1000 + stage * 100 + i + 0.25 for i, name in enumerate(names)}


def stage_files(folder: Path, worker: int, stage: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"metrics.json": json.dumps(stage_metrics(worker, stage)),
             "cross_likelihood.csv": "\n".join(",".join(f"{worker + i * j:.3f}" for j in range(4)) for i in range(4)),
             "noise_curve.png": os.urandom(20_000).hex()}  # a plot's size
    for name, text in files.items():
        (folder / name).write_text(text)
    return [folder / name for name in files]


# --- one process: one trial's worth of writes -----------------------------------------------------------
def worker(url: str, experiment_id: str, index: int, go: Path, out: Path) -> None:
    """Log one trial's worth once ``go`` exists; write the latencies and failures to ``out``. Imports only
    MLflow (the params come from a file), so 32 of these start quickly."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    latencies, failures = [], []

    def call(what: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - every failure is counted and reported
            failures.append(f"{what}: {type(error).__name__}: {str(error)[:300]}")
        finally:
            latencies.append(time.perf_counter() - start)

    scratch = Path(tempfile.mkdtemp(prefix=f"load{index}-"))
    params = json.loads((go.parent / "params.json").read_text())
    out.with_suffix(".ready").write_text("")
    while not go.exists():
        time.sleep(0.01)
    started = time.time()
    run = call("create_run", client.create_run, experiment_id, run_name=f"load {index}",
               tags={WORKER_TAG: str(index), "study.role": "trial", "study.config_id": f"{index:010d}"})
    if run is not None:
        run_id = run.info.run_id
        items = list(params.items())
        for start in range(0, len(items), 100):
            call("log_batch params", client.log_batch, run_id,
                 params=[Param(k, v) for k, v in items[start:start + 100]])
        call("set_tag", client.set_tag, run_id, "study.node_ip", "127.0.0.1")
        for stage in range(STAGES):
            call("set_tag", client.set_tag, run_id, f"study.stage{stage}.key", f"{index:08d}{stage:08d}")
            call("set_tag", client.set_tag, run_id, f"study.stage{stage}.reused", "false")
            now = int(time.time() * 1000)
            metrics = [Metric(k.replace("@", "_at_"), v, now, stage) for k, v in stage_metrics(index, stage).items()]
            call("log_batch metrics", client.log_batch, run_id, metrics=metrics)
            for path in stage_files(scratch / f"stage{stage}", index, stage):
                call("log_artifact", client.log_artifact, run_id, str(path), f"stage{stage}")
        for path in stage_files(scratch / "final", index, STAGES)[:2]:
            call("log_artifact", client.log_artifact, run_id, str(path))
        call("set_terminated", client.set_terminated, run_id, "FINISHED")
    out.write_text(json.dumps({"started": started, "ended": time.time(), "latencies": latencies,
                               "failures": failures, "run_id": run.info.run_id if run else None}))


# --- the driver: start N workers together, then read every write back -----------------------------------
@dataclass
class LoadResult:
    processes: int
    requests: int
    failed: int
    lost: int  # values (params, metric points, tags, artifacts) that a successful request wrote but are absent
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    failures: list[str]


def run_load(url: str, processes: int = 32, backend_uri: str | None = None, timeout: float = 600) -> LoadResult:
    """``processes`` workers against the server at ``url``; then every write is read back, from the server's
    database ``backend_uri`` when given (what is durably stored, and far faster than over HTTP)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    experiment_id = client.create_experiment(f"load-{time.time_ns()}")
    folder = Path(tempfile.mkdtemp(prefix="tracking-load-"))
    go = folder / "go"
    params = trial_params()
    (folder / "params.json").write_text(json.dumps(params))
    outs = [folder / f"worker{i}.json" for i in range(processes)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    started = [subprocess.Popen([sys.executable, "-m", "benchmarks.tracking_load", "--worker", url, experiment_id,
                                 str(i), str(go), str(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
               for i, out in enumerate(outs)]
    deadline = time.time() + timeout
    while not all(out.with_suffix(".ready").exists() for out in outs):  # every process imported and waiting
        if time.time() > deadline or any(p.poll() not in (None, 0) for p in started):
            raise RuntimeError("load workers did not start: " + "".join(p.stderr.read()[-1500:] for p in started
                                                                          if p.poll() not in (None, 0)))
        time.sleep(0.05)
    go.write_text("")
    for process in started:
        process.wait(timeout=max(1, deadline - time.time()))
    reports = [json.loads(out.read_text()) for out in outs]
    latencies = sorted(s for r in reports for s in r["latencies"])
    failures = [f for r in reports for f in r["failures"]]
    seconds = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    stored = MlflowClient(backend_uri) if backend_uri else client
    with ThreadPoolExecutor(4) as pool:
        lost = sum(pool.map(lambda item: missing_writes(stored, client, item[1]["run_id"], item[0], params),
                            [(i, r) for i, r in enumerate(reports) if r["run_id"]]))
    return LoadResult(processes, len(latencies), len(failures), lost, round(seconds, 2),
                      round(len(latencies) / seconds, 1), round(1000 * statistics.median(latencies), 1),
                      round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1), failures[:10])


def missing_writes(client, artifacts_client, run_id: str, index: int, params: dict[str, str]) -> int:
    """How many of the values worker ``index`` wrote are not in its run (0 when nothing was lost). Artifacts
    are listed through ``artifacts_client`` (the server, which holds them)."""
    run = client.get_run(run_id)
    missing = sum(run.data.params.get(k) != v for k, v in params.items())
    for stage in range(STAGES):
        for name, value in stage_metrics(index, stage).items():
            history = [(m.step, m.value) for m in client.get_metric_history(run_id, name.replace("@", "_at_"))]
            missing += (stage, value) not in history
        missing += run.data.tags.get(f"study.stage{stage}.key") != f"{index:08d}{stage:08d}"
        stored = {a.path for a in artifacts_client.list_artifacts(run_id, f"stage{stage}")}
        missing += len({f"stage{stage}/metrics.json", f"stage{stage}/cross_likelihood.csv",
                        f"stage{stage}/noise_curve.png"} - stored)
    missing += len({"metrics.json", "cross_likelihood.csv"} - {a.path for a in artifacts_client.list_artifacts(run_id)})
    missing += run.info.status != "FINISHED"
    return missing


def bench_tracking(processes: int = 32) -> list[dict]:
    """The same load against an ``mlflow server`` on sqlite and on PostgreSQL, one after the other."""
    from study.ops.servers import LocalPostgres, MlflowServer

    rows = []
    folder = Path(tempfile.mkdtemp(prefix="tracking-bench-"))
    postgres = LocalPostgres().start()
    try:
        for backend, uri in (("sqlite", f"sqlite:///{folder / 'mlflow.db'}"), ("postgresql", postgres.uri)):
            server = MlflowServer(uri, folder / f"artifacts-{backend}", folder / f"{backend}.log", workers=4).start()
            try:
                result = run_load(server.url, processes, backend_uri=uri)
            finally:
                server.stop()
            rows.append({"backend": backend, **{k: v for k, v in asdict(result).items() if k != "failures"}})
            if result.failures:
                print(f"{backend}: first failures: {result.failures[:3]}", file=sys.stderr)
    finally:
        postgres.remove()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=32)
    parser.add_argument("--worker", nargs=5, metavar=("URL", "EXPERIMENT", "INDEX", "GO", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        url, experiment_id, index, go, out = args.worker
        worker(url, experiment_id, int(index), Path(go), Path(out))
        return
    from .common import table  # imports torch: not in the worker processes

    print(table(bench_tracking(args.processes)))


if __name__ == "__main__":
    main()
