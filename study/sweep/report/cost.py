"""What the frontier cost: compute totals and the hypervolume of the Pareto set against cumulative compute.

Every trial logs, with each stage, what it has executed so far (``compute_*``, :class:`study.trial.run.Compute`;
a stage reused from the store costs no training). Replaying the stages in the order their metrics arrived
gives the study's history: after each one, the compute spent so far (summed over trials) and the hypervolume
of the Pareto set of every stage seen so far. The parent run gets ``hypervolume`` with the cumulative training
steps as its step, ``hypervolume.png`` and the totals ``compute_*_total``.

Hypervolume is measured against a reference point: ``search.reference_point`` per objective, else the worst
value any stage reported (so the hypervolume says how far the frontier moved beyond the worst trial seen).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from study.measure.plots import save_figure  # noqa: E402
from optuna._hypervolume import compute_hypervolume  # noqa: E402 - Optuna's WFG hypervolume

from study.measure.names import COMPUTE  # noqa: E402
from study.measure.pareto import oriented  # noqa: E402

STEPS = "compute_train_steps"


def minimised(values, objectives: dict[str, str]) -> np.ndarray:
    """``values`` [N, M] in the form Optuna's hypervolume takes: smaller is better (:func:`oriented`, negated)."""
    return -oriented(values, list(objectives.values()))


def reference_point(table: pd.DataFrame, objectives: dict[str, str], given: dict[str, float] | None) -> np.ndarray:
    """The reference point in minimisation form: ``given`` per objective, else the worst value seen."""
    worst = minimised(table[list(objectives)].to_numpy(float), objectives).max(0)
    chosen = [minimised([[given[name]]], {name: objectives[name]})[0, 0] if given and name in given else w
              for name, w in zip(objectives, worst)]
    return np.asarray(chosen, float)


def hypervolume(values: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume dominated by ``values`` (minimisation form) up to ``reference``; points that do not beat
    the reference in every objective add nothing."""
    inside = values[(values < reference).all(axis=1)] if len(values) else values
    return float(compute_hypervolume(inside, reference)) if len(inside) else 0.0


def history(rows: pd.DataFrame, objectives: dict[str, str], given: dict[str, float] | None = None) -> pd.DataFrame:
    """After each stage, in the order stages were reported: cumulative compute over all trials and the
    hypervolume of every stage seen so far. ``rows``: one row per (trial, stage), shared stages included."""
    names = list(objectives)
    if rows.empty or any(n not in rows for n in [*names, STEPS]):
        return pd.DataFrame()
    rows = rows.sort_values("logged_at", kind="stable").reset_index(drop=True)
    present = [c for c in COMPUTE if c in rows]
    spent = rows.groupby("run_id")[present].diff().fillna(rows[present])  # each trial's logs are cumulative
    cumulative = spent.cumsum()
    complete = rows[names].notna().all(axis=1).to_numpy()
    if not complete.any():
        return pd.DataFrame()
    reference = reference_point(rows[complete], objectives, given)
    points = minimised(rows[names].to_numpy(float), objectives)
    volumes = [hypervolume(points[: i + 1][complete[: i + 1]], reference) for i in range(len(rows))]
    return pd.DataFrame({**{c: cumulative[c] for c in cumulative}, "hypervolume": volumes, "run": rows["run"],
                         "stage": rows["stage"]})


def totals(rows: pd.DataFrame) -> dict[str, float]:
    """What the whole study executed: each trial's last cumulative compute, summed."""
    present = [c for c in COMPUTE if c in rows]
    if rows.empty or not present:
        return {}
    last = rows.sort_values("logged_at", kind="stable").groupby("run_id")[present].last()
    return {f"{name}_total": float(last[name].sum()) for name in present}


def plot_history(path: Path, curve: pd.DataFrame) -> bool:
    if curve.empty:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.step(curve[STEPS], curve["hypervolume"], where="post", color="tab:blue")
    ax.plot(curve[STEPS], curve["hypervolume"], "o", color="tab:blue", ms=3)
    ax.set_xlabel("training steps executed, all trials (reused stages cost none)")
    ax.set_ylabel("hypervolume of the Pareto set")
    ax.set_title("What the frontier cost")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def log_cost(client, parent_id: str, rows: pd.DataFrame, objectives: dict[str, str], folder: Path,
             given: dict[str, float] | None = None, log=print) -> pd.DataFrame:
    """Totals and the hypervolume history on the parent run (each step once, however often this runs)."""
    curve = history(rows, objectives, given)
    done = {m.step for m in client.get_metric_history(parent_id, "hypervolume")}
    for steps, volume in curve.groupby(STEPS, sort=True)["hypervolume"].last().items() if not curve.empty else []:
        if int(steps) not in done:
            client.log_metric(parent_id, "hypervolume", volume, step=int(steps))
    logged = client.get_run(parent_id).data.metrics
    for name, value in totals(rows).items():
        if name not in logged:
            client.log_metric(parent_id, name, value)
    if plot_history(folder / "hypervolume.png", curve):
        client.log_artifact(parent_id, str(folder / "hypervolume.png"))
    if not curve.empty:
        final = curve["hypervolume"].iloc[-1]
        log(f"compute: {curve[STEPS].iloc[-1]:,.0f} training steps executed for a final hypervolume of {final:.4g}"
            + ("" if final > 0 else " (no stage beats the reference point in every objective)"))
    return curve
