"""What ``--dry-run`` prints: the trials, the expanded grid, the training cost after stage sharing and the
precision the trials will use on this machine."""
from __future__ import annotations

from study.config.reading import ConfigError
from study.sweep.config import SweepConfig, trial_tree


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
    lines.extend(data_warnings(sweep))
    lines.extend(machine_warnings(sweep))
    return "\n".join(lines)


def unfit(sweep: SweepConfig, nodes: list[dict]) -> str | None:
    """Why none of ``nodes`` (Ray resource dicts) can hold one trial; None when one can."""
    need = {"CPU": sweep.resources.cpu, "GPU": sweep.resources.gpu}
    if any(all(node.get(name, 0) >= amount for name, amount in need.items() if amount) for node in nodes):
        return None
    largest = max(nodes, key=lambda node: (node.get("GPU", 0), node.get("CPU", 0)), default={})
    return (f"resources: one trial asks for {need['CPU']:g} CPU and {need['GPU']:g} GPU, but no node can offer "
            f"that (the largest has {largest.get('CPU', 0):g} CPU and {largest.get('GPU', 0):g} GPU)")


def machine_warnings(sweep: SweepConfig) -> list[str]:
    """A trial this machine cannot hold (a warning only: a cluster's nodes may be larger)."""
    from study.runtime.machine import this_machine

    machine = this_machine()
    if unfit(sweep, [machine]) is None:
        return []
    where = "the cluster's nodes may differ" if sweep.ray.address else "a local sweep would stop here"
    return [f"warning: resources: one trial asks for {sweep.resources.cpu:g} CPU and {sweep.resources.gpu:g} GPU; "
            f"this machine has {machine['CPU']:g} CPU and {machine['GPU']:g} GPU ({where})"]


def data_problems(sweep: SweepConfig) -> list[str]:
    """Every data folder the sweep's trials read that is missing here or holds no audio, one line each
    (:func:`study.data.layouts.missing_data`)."""
    from study.data.layouts import missing_data
    from study.sweep.config import validate_space

    data = {cfg.data.model_dump_json(): cfg.data for cfg in validate_space(sweep)}
    return sorted({problem for cfg in data.values() if (problem := missing_data(cfg))})


def check_data(sweep: SweepConfig) -> list[str]:
    """Every data folder the trials read is here and holds audio, asked before Ray starts: a ConfigError naming
    the first path that is not (exit 2). On a cluster the nodes may hold data this machine does not: there the
    problems come back as warnings."""
    problems = data_problems(sweep)
    if problems and not sweep.ray.address:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"data.root: {problems[0]}{more}")
    return [f"warning: data.root: {problem} (not on this machine: the cluster's nodes must have it)"
            for problem in problems]


def data_warnings(sweep: SweepConfig) -> list[str]:
    """What --dry-run says of the data: a local sweep would stop on it, a cluster's nodes may have it."""
    where = "the cluster's nodes may have it" if sweep.ray.address else "a local sweep stops here"
    return [f"warning: data.root: {problem} ({where})" for problem in data_problems(sweep)]


def describe_precision(sweep: SweepConfig) -> str:
    """The precision the trials will use on this machine (each node decides for itself, the same way)."""
    from study.runtime.machine import this_machine
    from study.runtime.precision import resolve_precision

    requested = {str(tree.get("precision", "auto")) for tree in
                 [sweep.base, *[trial_tree(sweep.base, point) for point in sweep.grid_points()]]}
    device = "cuda" if sweep.resources.gpu and this_machine()["GPU"] else "cpu"
    return "; ".join(resolve_precision(name, device).describe() for name in sorted(requested)) + " on this machine"


def spaced(number: int) -> str:
    return f"{number:,}".replace(",", " ")


def describe_cost(sweep: SweepConfig) -> list[str]:
    """Training steps planned and distinct after stage sharing, overall and per prior family."""
    from study.config.schema import TrialConfig
    from study.trial.stages import training_cost

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
