"""What the driver hands Ray Tune: the parameter space, the search algorithm, the scheduler and the console
table."""
from __future__ import annotations

from study.sweep.config import SweepConfig


class NoColumns(dict):
    """An empty column mapping that Tune's reporter takes as given (an empty one makes it show every raw
    parameter, a ``variant`` mapping as a cut-off dict)."""

    def __bool__(self) -> bool:
        return True


def console_reporter(sweep: SweepConfig):
    """Tune's progress table: the trial's label as its name (it already names every varied key), its status,
    the stage it reached and the objectives; printed when one of those changed, not on a timer, and without
    Tune's "Result logdir" line (a Ray session folder, not where results are: the closing summary says that)."""
    from ray.tune import CLIReporter

    class OnChange(CLIReporter):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._shown = None

        def should_report(self, trials, done: bool = False) -> bool:
            state = [(t.trial_id, t.status, (t.last_result or {}).get("stage")) for t in trials]
            if state == self._shown and not done:
                return False
            self._shown = state
            return True

        def _progress_str(self, trials, done, *sys_info, **kwargs) -> str:
            text = super()._progress_str(trials, done, *sys_info, **kwargs)
            return "\n".join(line for line in text.splitlines() if not line.startswith("Result logdir:"))

    return OnChange(metric_columns={"stage": "stage", **{name: name for name in sweep.search.objectives}},
                    parameter_columns=NoColumns(), max_report_frequency=5, max_column_length=40,
                    sort_by_metric=False)


def param_space(sweep: SweepConfig) -> dict:
    from ray import tune

    make = {"grid": tune.grid_search, "choice": tune.choice, "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v), "randint": lambda v: tune.randint(*v)}
    return {key: make[dim.kind](list(dim.values)) for key, dim in sweep.space.items()}


def search_algorithm(sweep: SweepConfig, root: str | None = None, seeds=()):
    """Tune's searcher: grid and random draws, or Optuna (:class:`study.sweep.searcher.StudySearch`, told
    ``seeds`` from search.warm_start first, and which trials pareto_halving stopped under ``root``)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    search = sweep.search
    if search.kind != "optuna":  # a SearchAlgorithm: it limits concurrency itself
        return BasicVariantGenerator(random_state=search.seed, max_concurrent=sweep.max_concurrent or 0)
    import functools

    import optuna

    from study.sweep.searcher import StudySearch

    sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=search.seed),
               "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=search.seed),
               "gp": lambda: optuna.samplers.GPSampler(seed=search.seed)}[search.sampler]()
    metrics, modes = list(search.objectives), list(search.objectives.values())
    if len(metrics) == 1:
        metrics, modes = metrics[0], modes[0]
    stopped = None
    if sweep.scheduler.kind == "pareto_halving" and root is not None:
        from study.sweep.halving import stopped_early

        stopped = functools.partial(stopped_early, root, sweep.name)
    return StudySearch(seeds, stopped, metric=metrics, mode=modes, sampler=sampler)


def trial_scheduler(sweep: SweepConfig, root: str | None = None):
    """Tune's scheduler for the sweep; ``pareto_halving`` keeps its decisions in the storage ``root``."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    s = sweep.scheduler
    if s.kind == "fifo":
        return FIFOScheduler()
    if s.kind == "pareto_halving":
        from study.sweep.halving import ParetoHalving, rungs_file

        return ParetoHalving(sweep.search.objectives, s.grace_period, s.reduction_factor, root, rungs_file(sweep.name))
    metric = s.metric or next(iter(sweep.search.objectives))
    mode = s.mode or sweep.search.objectives.get(metric, "max")
    return AsyncHyperBandScheduler(metric=metric, mode=mode, grace_period=s.grace_period,
                                   reduction_factor=s.reduction_factor, max_t=s.max_t)
