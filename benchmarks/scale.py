"""What grows with the number of trials: one sweep of minimal real trials (a tiny WaveNet, 2 training steps,
4 evaluation clips, no separation; a random space over the learning rate and σ*) at each size, on local Ray,
tracked to sqlite or to a local PostgreSQL server. Each size runs in a fresh process, so that the driver's
peak memory is its own.

    python -m benchmarks.run --only scale --scale-sizes 10 100 1000        # the README's table
    python -m benchmarks.scale --trials 100 --tracking sqlite:///x.db --folder DIR   # one size: JSON on stdout

Per size: wall time; per-trial driver overhead (wall × concurrent trials ÷ trials − a trial's own compute
seconds: what Ray, Tune, MLflow and the worker start cost each trial); the driver's peak RSS; Tune's experiment
state (each save's time, the file's size); the live frontier's refreshes during the sweep, and after it, side
by side on the same runs, a refresh that reads every run (what each refresh did before runs were kept
between reads) against one that reads the two runs a refresh meets in a running sweep; ``frontier.html``'s size
and time to draw in headless Chromium; the hypervolume and importance at the sweep's end;
``python -m study.frontier``; the tracking rows per trial; and that the sweep's own table covers every trial (the
trials ``frontier.html`` names, the rows of ``study_summary.csv``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBJECTIVES = {"auroc": "max", "logp_drop@0.01": "max"}
MINIMAL_TRIAL = {"prior": {"name": "wavenet", "preset": "tiny"}, "data": {"train_size": 50, "test_size": 20},
                 "training": {"steps": 2, "batch_size": 2, "crop": 256, "log_every": 1000},
                 "schedule": {"kind": "scratch"},
                 "evaluation": {"clips": 4, "crop": 256, "noise_levels": [0.01]}, "separation": {"enabled": False}}
CONCURRENT = 2
# the costs whose growth the table fits, and the direction that is bad
GROWTH = ("wall_s", "overhead_per_trial_s", "driver_peak_rss_mb", "tune_save_median_s", "tune_state_kb",
          "live_refresh_max_s", "live_refresh_median_s", "refresh_every_run_s", "refresh_two_runs_s", "page_mb",
          "page_draw_s", "hypervolume_s", "importance_s", "frontier_command_s", "tracking_rows_per_trial")


def sweep_config(trials: int, tracking_uri: str, folder: Path):
    from study.sweep.config import SweepConfig

    return SweepConfig(name=f"scale{trials}", experiment=f"scale{trials}", base=MINIMAL_TRIAL,
                       space={"training.lr": {"loguniform": [1e-4, 1e-2]}, "schedule.sigma": {"uniform": [0.0, 0.3]}},
                       search={"kind": "random", "num_samples": trials, "objectives": OBJECTIVES},
                       resources={"cpu": 1}, max_concurrent=CONCURRENT, storage=str(folder / "ray"),
                       mlflow={"tracking_uri": tracking_uri})


class Timed:
    """Wraps ``owner.name`` so that every call's seconds are kept in ``seconds``."""

    def __init__(self, owner, name: str):
        self.seconds: list[float] = []
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - started)

        setattr(owner, name, timed)


def measure(trials: int, tracking_uri: str, folder: Path, fresh_workers: bool = False) -> dict:
    """One sweep of ``trials`` minimal trials and every cost measured on it (run in a fresh process);
    ``fresh_workers``: a new Ray worker process per trial, as before workers were reused."""
    import ray
    from ray.tune.execution.tune_controller import TuneController

    import study.sweep.driver as driver
    import study.sweep.report.frontier as frontier

    saves = Timed(TuneController, "save_to_dir")
    hypervolume, importance = Timed(frontier, "log_cost"), Timed(frontier, "log_importances")
    lives = []

    class KeptLive(driver.LiveFrontier):  # the sweep's own live frontier, kept to read its refresh times
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            lives.append(self)

    driver.LiveFrontier = KeptLive
    driver.REUSE_WORKERS = not fresh_workers
    started = time.perf_counter()
    ray.init(address="local", num_cpus=CONCURRENT, include_dashboard=False, log_to_driver=False)  # never a running one
    ray_start = time.perf_counter() - started
    sweep = sweep_config(trials, tracking_uri, folder)
    started = time.perf_counter()
    summary = driver.run_sweep(sweep, log=lambda line: None)
    wall = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ray.shutdown()
    if summary.finished != trials:
        raise RuntimeError(f"scale sweep finished {summary.finished} of {trials} trials ({summary.failed} failed)")
    reader = lives[0].reader
    result = {"trials": trials, "tracking": tracking_uri.split(":", 1)[0].split("+", 1)[0],
              "workers": "fresh" if fresh_workers else "reused", "wall_s": wall, "ray_start_s": ray_start,
              "overhead_per_trial_s": wall * CONCURRENT / trials - own_seconds(reader),
              "driver_peak_rss_mb": peak_rss, "tune_saves": len(saves.seconds),
              "tune_save_median_s": statistics.median(saves.seconds), "tune_save_max_s": max(saves.seconds),
              "tune_state_kb": state_size(folder / "ray" / sweep.name) / 1024,
              "live_refreshes": len(lives[0].seconds), "live_refresh_max_s": max(lives[0].seconds),
              "live_refresh_median_s": statistics.median(lives[0].seconds),
              # runs whose histories the live frontier and the closing one read, per trial: about 1-2 when each
              # refresh read only what changed, about refreshes × 1 had each read everything
              "live_reads_per_trial": reader.runs_read / trials,
              "hypervolume_s": sum(hypervolume.seconds), "importance_s": sum(importance.seconds)}
    result.update(refreshes_side_by_side(reader))
    result.update(page_costs(reader, folder))
    result["frontier_command_s"] = frontier_command(sweep)
    result["tracking_rows_per_trial"] = tracking_rows(tracking_uri) / trials
    return result


def own_seconds(reader) -> float:
    """A trial's own compute (its ``compute_wall_seconds`` after its last stage), the median over trials."""
    rows = reader.read()
    return float(rows.sort_values("stage").groupby("run_id")["compute_wall_seconds"].last().median())


def state_size(experiment: Path) -> int:
    return sum(path.stat().st_size for path in experiment.glob("experiment_state-*.json"))


def refreshes_side_by_side(reader) -> dict:
    """A refresh that reads every run afresh (before: every refresh did) against one that meets two runs that
    have just ended (after: what a refresh meets while two trials run), on the same runs and the same
    drawing, alternated 3 times."""
    from study.sweep.report.frontier import refresh_frontier
    from study.sweep.report.rows import CLOCK_SKEW_MS, StageRows

    last = reader.client.search_runs([reader.experiment_id], max_results=2, order_by=["attributes.end_time DESC"],
                                     filter_string=f"tags.`mlflow.parentRunId` = '{reader.parent_id}'")
    every, two = [], []
    for _ in range(3):
        started = time.perf_counter()
        refresh_frontier(StageRows(reader.client, reader.experiment_id, reader.parent_id, reader.metrics),
                         OBJECTIVES)
        every.append(time.perf_counter() - started)
        for run in last:  # as if the two that ended last had just reported: unknown, inside the listing's window
            del reader._known[run.info.run_id]
        reader._listed_at = min(run.info.end_time for run in last) + CLOCK_SKEW_MS
        started = time.perf_counter()
        refresh_frontier(reader, OBJECTIVES)
        two.append(time.perf_counter() - started)
    return {"refresh_every_run_s": statistics.median(every), "refresh_two_runs_s": statistics.median(two)}


def page_costs(reader, folder: Path) -> dict:
    """``frontier.html`` as the sweep left it on its run: size, and seconds until Chromium has drawn each plot."""
    page = Path(reader.client.download_artifacts(reader.parent_id, "frontier.html", str(folder)))
    summary = Path(reader.client.download_artifacts(reader.parent_id, "study_summary.csv", str(folder)))
    named = set(re.findall(r"\\u00b7 (\d{5})", page.read_text()))  # each trial's name ends "· <its number>"
    return {"page_mb": page.stat().st_size / 2**20, "page_draw_s": draw_seconds(page), "page_trials": len(named),
            "summary_rows": len(summary.read_text().splitlines()) - 1}


def draw_seconds(page: Path) -> float:
    """Seconds from opening ``page`` to every Plotly figure drawn, in headless Chromium (NaN without one)."""
    import shutil

    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return math.nan
    if browser_path is None:
        return math.nan
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path,
                                             args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()
        started = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length > 0 && "
                              "[...document.querySelectorAll('.js-plotly-plot')].every(p => p._fullLayout)",
                              timeout=120_000)
        seconds = time.perf_counter() - started
        browser.close()
    return seconds


def frontier_command(sweep) -> float:
    """Seconds for ``python -m study.frontier`` to draw the sweep's frontier again (a view of its own)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "study.frontier", "--experiment", sweep.experiment_name,
                    "--tracking-uri", sweep.mlflow.tracking_uri, "--objectives",
                    *(f"{name}:{mode}" for name, mode in OBJECTIVES.items())],
                   check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - started


def tracking_rows(uri: str) -> int:
    """Rows in the tracking database's run tables (metrics, params, tags, latest metrics)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    with engine.connect() as connection:
        return sum(connection.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar()
                   for table in ("metrics", "latest_metrics", "params", "tags"))


def growth(sizes: list[int], values: list[float]) -> float:
    """The exponent b of cost ∝ trials^b, least squares in log-log (0: constant, 1: linear)."""
    points = [(math.log(n), math.log(v)) for n, v in zip(sizes, values) if v and v > 0 and math.isfinite(v)]
    if len(points) < 2:
        return math.nan
    mx, my = (statistics.fmean(p[i] for p in points) for i in (0, 1))
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def bench_scale(sizes=(10, 100, 1000), backends=("sqlite", "postgresql")) -> list[dict]:
    """Every size on every tracking backend, each in its own process; the middle size once more with a new
    worker process per trial (before workers were reused), on sqlite; then one row per
    backend with each cost's fitted growth exponent and the per-trial overhead's ratio between the largest
    and the smallest size."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        postgres = None
        try:
            for backend in backends:
                for trials in sizes:
                    if backend == "postgresql" and postgres is None:
                        from study.ops.servers import LocalPostgres

                        postgres = LocalPostgres().start()  # its own folder, readable by the server's user
                    rows.append(one_size(trials, backend, Path(tmp), postgres))
            rows.append(one_size(sorted(sizes)[len(sizes) // 2], "sqlite", Path(tmp), None, fresh_workers=True))
        finally:
            if postgres is not None:
                postgres.remove()
    reused = [row for row in rows if row["workers"] == "reused"]
    return rows + [fitted(reused, backend) for backend in backends]


def one_size(trials: int, backend: str, tmp: Path, postgres, fresh_workers: bool = False) -> dict:
    name = f"{backend}{trials}{'-fresh' if fresh_workers else ''}"
    folder = tmp / name
    folder.mkdir()
    uri = postgres.create_database(name.replace("-", "_")) if backend == "postgresql" else \
        f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "benchmarks.scale", "--trials", str(trials), "--tracking", uri,
               "--folder", str(folder)] + (["--fresh-workers"] if fresh_workers else [])
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=4 * 3600)
    if out.returncode != 0:
        raise RuntimeError(f"scale size {name} failed: {out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"scale {name}: {result}", file=sys.stderr, flush=True)  # hours of work: say each size as it ends
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in result.items()}


def fitted(rows: list[dict], backend: str) -> dict:
    mine = sorted((row for row in rows if row["tracking"] == backend), key=lambda row: row["trials"])
    sizes = [row["trials"] for row in mine]
    out = {"trials": f"growth {sizes[0]}→{sizes[-1]} (exponent)", "tracking": backend}
    out.update({key: round(growth(sizes, [row[key] for row in mine]), 2) for key in GROWTH})
    out["overhead_ratio"] = round(mine[-1]["overhead_per_trial_s"] / mine[0]["overhead_per_trial_s"], 2)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--tracking", required=True, help="the MLflow tracking URI (sqlite:///… or postgresql://…)")
    parser.add_argument("--folder", required=True, help="where the sweep's Tune state and stage store go")
    parser.add_argument("--fresh-workers", action="store_true", help="a new Ray worker process per trial")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.trials, args.tracking, Path(args.folder), args.fresh_workers)))


if __name__ == "__main__":
    main()
