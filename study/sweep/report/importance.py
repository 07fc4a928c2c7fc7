"""Which settings move each objective: Optuna's fANOVA importance over the sweep's finished trials.

Each finished trial is one observation: the settings the sweep varied (its parameters) and the objectives
of its last stage. For every objective an in-memory Optuna study is built from them (``create_trial``) and
``optuna.importance.get_param_importances`` with the fANOVA evaluator answers how much of the objective's
variance each setting explains. Below ``MIN_TRIALS`` finished trials the answer would be noise: none is given.
fANOVA's forests cost more than the trials grow (benchmarks/scale.py: 4.6 s at 300 trials, 9.0 s at 500, 31.5 s
at 1 000, two objectives, 2 cores), so above ``MAX_TRIALS`` it is computed on a seeded sample of that many and
the closing lines say so (on that sweep the sample moved no importance by more than 0.05).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402

from study.measure.plots import save_figure  # noqa: E402

MIN_TRIALS = 10
MAX_TRIALS = 500


def distribution(values: list[str]):
    """A numeric setting as a float range, anything else (architectures, grid variants) as categories."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return optuna.distributions.CategoricalDistribution(sorted(set(values))), values
    return optuna.distributions.FloatDistribution(min(numbers), max(numbers)), numbers


def importances(trials: pd.DataFrame, settings: list[str], objectives: list[str], seed: int = 0) -> pd.DataFrame:
    """``trials``: one row per finished trial with its settings (as text) and objectives. Returns rows of
    (objective, setting, importance); empty when there are too few trials or nothing varies."""
    rows = []
    for objective in objectives:
        if objective not in trials:  # no finished trial reported it
            continue
        data = sample(trials.dropna(subset=[objective]), seed)
        varied = [s for s in settings if s in data and data[s].nunique() > 1]
        if len(data) < MIN_TRIALS or not varied:
            continue
        spaces = {s: distribution([str(v) for v in data[s]]) for s in varied}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize")
        for i in range(len(data)):
            params = {s: spaces[s][1][i] for s in varied}
            study.add_trial(optuna.trial.create_trial(params=params, distributions={s: spaces[s][0] for s in varied},
                                                      value=float(data[objective].iloc[i])))
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
        rows += [{"objective": objective, "setting": s, "importance": v} for s, v in found.items()]
    return pd.DataFrame(rows, columns=["objective", "setting", "importance"])


def sample(trials: pd.DataFrame, seed: int) -> pd.DataFrame:
    """At most ``MAX_TRIALS`` of the trials, the same ones for the same trials and seed."""
    return trials.sample(n=MAX_TRIALS, random_state=seed) if len(trials) > MAX_TRIALS else trials


def plot_importances(path: Path, table: pd.DataFrame) -> bool:
    if table.empty:
        return False
    wide = table.pivot(index="setting", columns="objective", values="importance").fillna(0.0)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(wide) + 1.5))
    wide.plot.barh(ax=ax)
    ax.set_xlabel("fANOVA importance (share of the objective's variance)")
    ax.set_title("Which settings move each objective")
    return save_figure(fig, path)


def top_lines(table: pd.DataFrame, count: int = 3) -> list[str]:
    """One line per objective: its ``count`` most important settings."""
    lines = []
    for objective, group in table.groupby("objective", sort=False):
        best = group.sort_values("importance", ascending=False).head(count)
        lines.append(f"importance for {objective}: " + ", ".join(f"{s} {v:.2f}" for s, v in
                                                                 zip(best["setting"], best["importance"])))
    return lines


def log_importances(client, parent_id: str, trials: pd.DataFrame, settings: list[str], objectives: list[str],
                    folder: Path, log=print) -> pd.DataFrame:
    table = importances(trials, settings, objectives)
    if table.empty:
        log(f"importance: needs at least {MIN_TRIALS} finished trials with varied settings "
            f"({len(trials)} finished)")
        return table
    table.to_csv(folder / "importance.csv", index=False, float_format="%.4g")
    client.log_artifact(parent_id, str(folder / "importance.csv"))
    if plot_importances(folder / "importance.png", table):
        client.log_artifact(parent_id, str(folder / "importance.png"))
    if len(trials) > MAX_TRIALS:
        log(f"importance: on a seeded sample of {MAX_TRIALS} of the {len(trials)} finished trials (fANOVA's cost "
            "grows faster than the trials)")
    for line in top_lines(table):
        log(line)
    return table
