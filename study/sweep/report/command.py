"""``python -m study.frontier``'s command line: what it is given is checked first (each mistake one line, exit 2,
in a couple of seconds: only MLflow is imported for it), then :mod:`study.sweep.report.frontier` draws.

    python -m study.frontier --experiment NAME [--tracking-uri URI] [--objectives auroc:max si_sdr:max] [--list-metrics]
    python -m study.frontier EXP1 EXP2 … [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlflow.exceptions import MlflowException

from study.config.reading import did_you_mean
from study.sweep.tracking import ROLE_TAG, child_runs, client_for, find_run, redacted, study_name


def parse_objectives(items) -> dict[str, str]:
    objectives = {}
    for item in items:
        name, _, mode = item.rpartition(":")
        if mode not in ("max", "min") or not name:
            raise ValueError(f"objective {item!r}: expected METRIC:max or METRIC:min")
        objectives[name] = mode
    return objectives


def sweep_of(client, name: str, uri: str):
    """(experiment, its sweep run) by experiment name; ValueError with one line when either is missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise ValueError(f"no experiment {name!r} at {redacted(uri)}")
    parent = find_run(client, experiment.experiment_id, **{ROLE_TAG: "sweep"})
    if parent is None:
        raise ValueError(f"experiment {name!r} has no sweep run")
    return experiment, parent


def logged_metrics(client, sweeps) -> list[str]:
    """Every metric the trials of these sweeps logged, as objectives name them (``auroc@0.01``)."""
    names = {key for experiment, parent in sweeps
             for run in child_runs(client, experiment.experiment_id, parent.info.run_id) for key in run.data.metrics}
    return sorted(map(study_name, names))


def main(argv=None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    names = list(dict.fromkeys([*([args.experiment] if args.experiment else []), *args.experiments]))
    if not names:
        parser.error("name an experiment")
    try:
        objectives = parse_objectives(args.objectives)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        client = client_for(args.tracking_uri)
        sweeps = [sweep_of(client, name, args.tracking_uri) for name in names]
    except MlflowException as error:
        print(f"error: --tracking-uri {redacted(args.tracking_uri)}: cannot open it ({str(error)[:300]})", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logged = logged_metrics(client, sweeps)
    if args.list_metrics:
        print("\n".join(logged))
        return 0
    unknown = [name for name in objectives if name not in logged]
    if unknown:
        print(f"error: --objectives: no trial of {', '.join(map(repr, names))} logged {unknown[0]!r}"
              f"{did_you_mean(unknown[0], logged)} (--list-metrics shows all {len(logged)} they logged)",
              file=sys.stderr)
        return 2
    from study.sweep.report.frontier import across, log_frontier, view_name  # matplotlib, Plotly: only now

    if len(sweeps) > 1:
        out = args.out or Path("frontier_" + "+".join(names))
        across(client, sweeps, objectives, out)
        print(f"one frontier across {len(sweeps)} experiments written to {out}/ (no run's record is changed)")
        return 0
    experiment, parent = sweeps[0]
    print(f"sweep run {parent.info.run_name} ({parent.info.run_id})")
    log_frontier(client, experiment.experiment_id, parent.info.run_id, objectives, artifact_path=view_name(objectives))
    print(f"written to the sweep run's artifacts under {view_name(objectives)}/ (its own record is unchanged)")
    return 0




def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m study.frontier",
                                     description="Pareto frontier of a study from its MLflow runs; with several "
                                                 "experiments, one frontier across them.")
    parser.add_argument("experiments", nargs="*", metavar="EXPERIMENT", help="MLflow experiment name(s)")
    parser.add_argument("--experiment", help="one MLflow experiment name (the same as giving it alone)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--objectives", nargs="+", default=["auroc:max", "si_sdr:max"], metavar="METRIC:max|min")
    parser.add_argument("--out", type=Path, help="several experiments: the folder to write to "
                                                 "(default frontier_<experiments>)")
    parser.add_argument("--list-metrics", action="store_true",
                        help="print every metric the experiments' trials logged (what --objectives may name) and exit")
    return parser
