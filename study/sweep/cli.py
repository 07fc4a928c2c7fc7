"""Run a study: ``python -m study.sweep SWEEP.yaml`` — Ray Tune trials, MLflow runs, the Pareto frontier.

    python -m study.sweep sweeps/quickstart.yaml [--dry-run] [--resume | --restart] [--set key=value …]
                          [--tracking-uri URI] [--storage PATH] [--max-concurrent N]

Any configuration mistake exits with status 2 before Ray, MLflow or any folder is touched.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from study.config.reading import ConfigError, bounded, load_tree, set_path, validate
from study.sweep.config import SweepConfig, sweep_metrics, validate_space
from study.sweep.plan import check_data, describe

EXIT_CONFIG = 2


def load_sweep(path: Path, overrides: list[str], tracking_uri: str | None = None, storage: str | None = None,
               max_concurrent: int | None = None, objectives: bool = True) -> SweepConfig:
    tree = load_tree(path, overrides)
    flags = {"mlflow.tracking_uri": ("--tracking-uri", tracking_uri), "storage": ("--storage", storage),
             "max_concurrent": ("--max-concurrent", max_concurrent)}
    for key, (flag, value) in flags.items():
        if value is not None:
            set_path(tree, key, value, where=flag)
    sweep = validate(SweepConfig, tree, str(path))
    validate_space(sweep, objectives)
    return sweep


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run a study of generative audio priors with Ray Tune and MLflow.")
    parser.add_argument("sweep", type=Path, help="sweep YAML (see sweeps/)")
    parser.add_argument("--dry-run", action="store_true", help="print the trials and exit without starting Ray")
    parser.add_argument("--list-metrics", action="store_true",
                        help="print every metric the sweep's trials report (what objectives may name) and exit")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue an interrupted sweep (the default if one exists)")
    group.add_argument("--restart", action="store_true", help="discard saved sweep state and start over")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a sweep field, e.g. --set base.training.steps=50")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default from the YAML: sqlite:///mlflow.db)")
    parser.add_argument("--storage", help="Ray Tune storage: a local path or a URI")
    parser.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    return parser


def main(argv=None) -> int:
    args = arguments().parse_args(argv)
    try:
        sweep = load_sweep(args.sweep, args.overrides, args.tracking_uri, args.storage, args.max_concurrent,
                           objectives=not args.list_metrics)
        if args.list_metrics:
            print("\n".join(sweep_metrics(validate_space(sweep, objectives=False))))
            return 0
        if not args.dry_run:  # a missing data folder stops the sweep before anything is printed or started
            check_data(sweep)
    except ConfigError as error:
        print(f"error: {bounded(str(error))}", file=sys.stderr)
        return EXIT_CONFIG
    print(describe(sweep))
    return 0 if args.dry_run else run(sweep, args, sys.argv[1:] if argv is None else argv)


def run(sweep: SweepConfig, args, given: list[str]) -> int:
    """Run the sweep (Ray and MLflow are imported only now); the exit status."""
    from study.sweep.driver import SweepCrashed, run_sweep
    from study.sweep.tracking import redacted

    # every flag as given, a password in a URI replaced by ***
    again = [arg for arg in given if arg not in ("--resume", "--restart")]
    resume_command = shlex.join(["python", "-m", "study.sweep", *map(redacted, again), "--resume"])
    try:
        summary = run_sweep(sweep, args.sweep, "resume" if args.resume else "restart" if args.restart else "auto",
                            resume_command=resume_command)
    except ConfigError as error:
        print(f"error: {bounded(str(error))}", file=sys.stderr)
        return EXIT_CONFIG
    except SweepCrashed as crash:
        print(f"\n{crash.summary.describe()}\nerror: {bounded(str(crash))}", file=sys.stderr)
        return 1
    print("\n" + summary.describe())
    if summary.interrupted:
        return 128 + summary.interrupted  # 130 for SIGINT, 143 for SIGTERM, as shells report them
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
