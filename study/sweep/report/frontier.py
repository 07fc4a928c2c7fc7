"""The Pareto frontier of the study, computed from MLflow runs (:mod:`study.sweep.report.rows`: what the trials
logged, never what Tune holds in the driver); drawn at the end of every sweep, live while it runs, and by
``python -m study.frontier`` (:mod:`study.sweep.report.command`).

One point per stage (each stage's metrics are logged at step = stage index; a stage several trials share
counts once). The Pareto set is over the objectives; it is printed, and three artifacts go to the sweep's
parent run (the command writes them under ``frontier_<objectives>/``, never over the sweep's own): ``study_summary.csv``
(one row per trial and stage, objectives first; MLflow shows it as a table), ``frontier.png`` (objectives;
colour = architecture, marker = schedule, labels = stage σ, Pareto points joined, the do-nothing separation
baseline drawn, diverged separations marked) and ``dilemma.png`` (auroc versus ``logp_drop@<σ>`` at the
smallest evaluation noise level the trials report: discriminative versus smooth).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from study.measure.names import COMPUTE, SMOOTHNESS, UNCHANGED_BELOW  # noqa: E402
from study.measure.pareto import pareto_mask  # noqa: E402
from study.measure.plots import save_figure  # noqa: E402
from study.sweep.report.cost import log_cost  # noqa: E402
from study.sweep.report.importance import log_importances  # noqa: E402
from study.sweep.report.page import colour_by, write_page  # noqa: E402
from study.sweep.report.rows import StageRows, stage_rows  # noqa: E402
from study.sweep.tracking import child_runs, mlflow_name  # noqa: E402

NOT_SCORES = ("run", "run_id", "status", "target_sigma", "schedule", "stage_key", "logged_at", "stopped_early", "vs_nothing",
              *COMPUTE)
UNITS = {"si_sdr": "dB", "si_sdri": "dB", "sdr": "dB", "si_sdri_amortised": "dB", SMOOTHNESS: "nats/sample"}
MARKERS = {"scratch": "s", "from_clean": "o", "chained": "^"}


def once_per_stage(table: pd.DataFrame) -> pd.DataFrame:
    """A stage several trials share (one stored key: say, one clean stage) as one row, with ``shared_by`` the
    number of trials that reached it. A trial that only trained through the stage (no separation there) adds
    nothing but its count; trials that share a stage but score it differently keep their own rows."""
    if table.empty or "stage_key" not in table:
        return table
    scores = [c for c in table if c not in NOT_SCORES]
    ordered = table.loc[table.notna().sum(axis=1).sort_values(ascending=False, kind="stable").index]  # fullest first
    shared_by = pd.Series(1, index=ordered.index)
    keys = ordered["stage_key"]
    for _, group in ordered[keys.notna() & keys.duplicated(keep=False)].groupby("stage_key", sort=False):
        homes: list = []  # the rows kept for this key (one, unless trials scored the stage differently)
        for index, row in group.iterrows():
            home = next((h for h in homes if agrees(ordered.loc[h, scores], row[scores])), None)
            if home is None:
                homes.append(index)
            else:
                shared_by[home] += 1
                shared_by[index] = 0
    kept = shared_by > 0  # a key only one row has is kept without comparing: most keys, in a large sweep
    return ordered[kept].assign(shared_by=shared_by[kept].astype(int)).reset_index(drop=True)


def agrees(fuller: pd.Series, other: pd.Series) -> bool:
    """``other`` says nothing ``fuller`` contradicts (a value missing from ``other`` says nothing)."""
    both = fuller.notna() & other.notna()
    return bool((fuller[both] == other[both]).all()) and not (other.notna() & fuller.isna()).any()


def trial_outcomes(client, experiment_id: str, parent_id: str, rows: pd.DataFrame, settings) -> pd.DataFrame:
    """One row per finished trial: its value of each varied setting (its run's params) and its last stage."""
    if rows.empty:
        return pd.DataFrame()
    params = {run.info.run_id: run.data.params for run in child_runs(client, experiment_id, parent_id)}
    last = rows[rows["status"] == "FINISHED"].sort_values("stage").groupby("run_id").last()
    return pd.DataFrame([{**{s: params.get(run_id, {}).get(s) for s in settings}, **row.to_dict()}
                         for run_id, row in last.iterrows()])


def smoothness_column(table: pd.DataFrame) -> str | None:
    """The smoothness objective in ``table``: ``logp_drop@<σ>`` at the smallest σ the trials report."""
    levels = [column for column in table if str(column).startswith(f"{SMOOTHNESS}@")]
    return min(levels, key=lambda column: float(column.partition("@")[2])) if levels else None


def frontier_table(rows: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The frontier's table from :func:`stage_rows`: a shared stage once, the Pareto set marked, and each
    separation judged against doing nothing."""
    table = with_pareto(once_per_stage(rows), objectives)
    if "si_sdri" in table:
        table["vs_nothing"] = [versus_nothing(row) for _, row in table.iterrows()]
    return table


SIGNIFICANT_SE = 2.0  # a separation differs from doing nothing when its SI-SDRi is this many standard errors away


def versus_nothing(row: pd.Series) -> str | None:
    """What a stage's separation says against doing nothing (SI-SDRi 0), given its spread over the mixtures."""
    gain, se, moved = (row.get(name, float("nan")) for name in ("si_sdri", "si_sdri_se", "separation_moved"))
    if pd.isna(gain):
        return None
    if moved < UNCHANGED_BELOW:
        return f"start returned unchanged (moved {moved:.1g})"
    if pd.isna(se):
        return "one mixture: no spread"
    if abs(gain) < SIGNIFICANT_SE * se:
        return "indistinguishable from doing nothing"
    return "better than doing nothing" if gain > 0 else "worse than doing nothing"


def verdict_notes(table: pd.DataFrame) -> list[str]:
    """One line per kind of Pareto point whose separation is not better than doing nothing, naming its runs."""
    verdicts = table[table["pareto"]]["vs_nothing"].dropna() if "vs_nothing" in table else pd.Series(dtype=str)
    return [f"{len(runs)} Pareto point(s): {verdict} (SI-SDRi against {SIGNIFICANT_SE:g} standard errors over the "
            "mixtures): " + ", ".join(table.loc[runs, "run"].astype(str))
            for verdict, runs in verdicts.groupby(verdicts).groups.items() if verdict != "better than doing nothing"]


def with_pareto(table: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    table = table.copy()
    table["pareto"] = False
    names = list(objectives)
    if table.empty or any(n not in table for n in names):
        return table
    complete = table.dropna(subset=names)
    if not complete.empty:
        mask = pareto_mask(complete[names].to_numpy(), list(objectives.values()))
        table.loc[complete.index[mask], "pareto"] = True
    return table


def direction(name: str, objectives: dict[str, str]) -> str:
    better = objectives.get(name) or ("max" if name.startswith(f"{SMOOTHNESS}@") else None)
    return f", {'higher' if better == 'max' else 'lower'} is better" if better else ""


def axis_label(name: str, objectives: dict[str, str], note: str = "") -> str:
    units = UNITS.get(name.partition("@")[0] if name.startswith(f"{SMOOTHNESS}@") else name, "")
    inside = ", ".join(part for part in (units, note) if part) + direction(name, objectives)
    return f"{name} ({inside.lstrip(', ')})" if inside else name


def scatter(ax, table: pd.DataFrame, x: str, y: str) -> None:
    by = colour_by(table)  # the experiment across experiments, else the architecture
    colours = {a: plt.cm.tab10(i % 10) for i, a in enumerate(sorted(table[by].dropna().unique()))}
    for (key, schedule), group in table.groupby([by, "schedule"]):
        ax.scatter(group[x], group[y], color=colours[key], marker=MARKERS.get(schedule, "o"), s=45,
                   label=f"{key} · {schedule}", alpha=0.85, edgecolor="k", linewidth=0.4)
    labelled = table if len(table) <= LABEL_ALL_BELOW else table[table["pareto"]] if "pareto" in table else table[:0]
    for _, row in labelled.iterrows():
        ax.annotate(f"σ={row.get('stage_sigma', float('nan')):.3g}", (row[x], row[y]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.grid(alpha=0.3)


# above this many points a label on each is unreadable, and drawing them costs seconds: only the Pareto
# points keep their σ label
LABEL_ALL_BELOW = 60


def legend(ax, table: pd.DataFrame) -> None:
    """Matplotlib's "best" place searches every point: with many it costs seconds, so a fixed corner."""
    ax.legend(fontsize=8, loc="best" if len(table) <= LABEL_ALL_BELOW else "lower left")


SEPARATION_SCORES = ("si_sdr", "sdr", "si_sdri")


def mark_diverged(ax, table: pd.DataFrame, x: str, y: str) -> None:
    """Trials whose separation diverged have no score: show them as red crosses on the axis's lower edge."""
    score, other = (y, x) if y in SEPARATION_SCORES else (x, y) if x in SEPARATION_SCORES else (None, None)
    if score is None or "separation_diverged" not in table or other not in table:
        return
    diverged = table[(table["separation_diverged"] == 1) & table[other].notna()]
    if diverged.empty:
        return
    low = (ax.get_ylim() if score == y else ax.get_xlim())[0]
    xs = diverged[x] if score == y else [low] * len(diverged)
    ys = [low] * len(diverged) if score == y else diverged[y]
    ax.scatter(xs, ys, marker="x", color="red", s=60, clip_on=False, label="separation diverged (no score)")
    for px, py in zip(xs, ys):
        ax.annotate("diverged", (px, py), fontsize=7, color="red", xytext=(3, 5), textcoords="offset points")


def draw_baseline(ax, table: pd.DataFrame, x: str, y: str) -> None:
    """The do-nothing separation baseline (every source estimated as the mixture, SI-SDRi = 0) and, when the
    sweep trained one, the supervised reference (ConvTasNet on the same mixtures), for the sampler's scores and
    the separator's (``*_amortised``) alike."""
    for axis, line in ((y, ax.axhline), (x, ax.axvline)):
        name = axis.removesuffix("_amortised")  # the separator's scores have the same baselines
        if name == "si_sdri":
            line(0.0, color="grey", ls=":", lw=1.2, label="do nothing: mixture as every estimate")
        elif name == "si_sdr" and "si_sdr_mixture" in table and table["si_sdr_mixture"].notna().any():
            line(table["si_sdr_mixture"].mean(), color="grey", ls=":", lw=1.2,
                 label=f"do nothing: mixture as every estimate ({table['si_sdr_mixture'].mean():.2f} dB)")
        supervised = f"{name}_supervised"
        if name in ("si_sdr", "si_sdri") and supervised in table and table[supervised].notna().any():
            level = table[supervised].mean()
            line(level, color="tab:purple", ls="-.", lw=1.2, label=f"supervised ConvTasNet ({level:.2f} dB)")


def draw_oracle_start(ax, table: pd.DataFrame, x: str, y: str) -> bool:
    """The same samplers started at the true sources, on a panel of their own (their scores, tens of dB
    above the real ones, would squash the frontier's range): a prior that holds the truth while the mixture
    start stays low says global inference is what fails. False when the sweep has none to draw."""
    oracle = {"si_sdr": "si_sdr_oracle_start", "si_sdri": "si_sdri_oracle_start"}.get(y)
    points = table.dropna(subset=[x, oracle]) if oracle in table and x in table else table.iloc[0:0]
    if points.empty:
        return False
    scatter(ax, points, x, oracle)
    ax.set_title("started at the true sources", fontsize=9)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{oracle} (dB)")
    return True


def plot_frontier(path: Path, table: pd.DataFrame, objectives: dict[str, str]) -> bool:
    x, y = (list(objectives) + [smoothness_column(table)])[:2]
    points = table.dropna(subset=[x, y]) if x in table and y in table else table.iloc[0:0]
    if points.empty:
        return False
    fig, (ax, oracle_ax) = plt.subplots(1, 2, figsize=(10.5, 5.5), gridspec_kw={"width_ratios": [3, 1.2]})
    scatter(ax, points, x, y)
    for name, bars in ((x, "xerr"), (y, "yerr")):  # a separation score ± its standard error over the mixtures
        if f"{name}_se" in points and points[f"{name}_se"].notna().any():
            ax.errorbar(points[x], points[y], **{bars: points[f"{name}_se"]}, fmt="none", ecolor="grey", alpha=0.6,
                        lw=1, label=f"± standard error of {name}")
    front = points[points["pareto"]].sort_values(x)
    ax.plot(front[x], front[y], "k--", lw=1, label="Pareto set")
    draw_baseline(ax, table, x, y)
    mark_diverged(ax, table, x, y)
    ax.set_xlabel(axis_label(x, objectives))
    ax.set_ylabel(axis_label(y, objectives))
    ax.set_title(f"Study frontier: {x} ({objectives.get(x, '')}) vs {y} ({objectives.get(y, '')}), one point per stage",
                 fontsize=10)
    legend(ax, points)
    if not draw_oracle_start(oracle_ax, table, x, y):
        oracle_ax.remove()
    return save_figure(fig, path)


def plot_dilemma(path: Path, table: pd.DataFrame) -> bool:
    smooth = smoothness_column(table)
    needed = ["auroc", smooth]
    if smooth is None or "auroc" not in table or table.dropna(subset=needed).empty:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    scatter(ax, table.dropna(subset=needed), smooth, "auroc")
    ax.set_xlabel(f"{smooth} (nats/sample; near 0 = smooth, very negative = peaked; higher is better)")
    ax.set_ylabel("auroc (discrimination, higher is better)")
    ax.set_title("Discriminative versus smooth: every trial and stage")
    legend(ax, table)
    return save_figure(fig, path)


def format_table(table: pd.DataFrame, objectives) -> str:
    context = (smoothness_column(table), "si_sdri")
    columns = ["run", "stage", "stage_sigma", *objectives, *(c for c in context if c and c not in objectives)]
    shown = table[table["pareto"]][[c for c in columns if c in table]]
    if shown.empty:
        return "Pareto set: empty (no trial reported every objective)"
    text = "Pareto set over " + ", ".join(f"{k} ({v})" for k, v in objectives.items()) + ":\n" + \
        shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    text += "".join(f"\n{line}" for line in verdict_notes(table))
    stopped = table[table["pareto"] & table["stopped_early"].notna()] if "stopped_early" in table else table.iloc[:0]
    if len(stopped):
        text += (f"\n{len(stopped)} of these come from trials stopped early (their last stage): "
                 + ", ".join(stopped["run"].astype(str)))
    return text


SUMMARY = "study_summary.csv"


def summary_table(table: pd.DataFrame, objectives) -> pd.DataFrame:
    """The study at a glance: one row per trial and stage, objectives first, then what tells trials apart."""
    first = [*objectives, "run", "stage", "stage_sigma", "pareto", "architecture", "schedule", "target_sigma"]
    ordered = [c for c in first if c in table] + [c for c in table if c not in first and c != "run_id"]
    return table[ordered + (["run_id"] if "run_id" in table else [])]


def log_frontier(client, experiment_id: str, parent_id: str, objectives: dict[str, str], log=print,
                 artifact_path: str | None = None, reference_point: dict[str, float] | None = None,
                 settings: list[str] | None = None, reader: StageRows | None = None) -> pd.DataFrame:
    """Compute the frontier of a sweep from its child runs, print it, and log CSV and plots to the parent:
    the sweep's own record at the top (``artifact_path`` None, from the driver, with the supervised reference
    as a metric), or under ``artifact_path`` (another view, which never touches the sweep's record).
    ``reader``: the live frontier's, so that only the runs changed since its last refresh are read again."""
    reader = reader or StageRows(client, experiment_id, parent_id, list(objectives))
    rows = reader.read(everything=True)  # the sweep has just closed its runs: every one, each read once
    table = frontier_table(rows, objectives)
    log(format_table(table, objectives))
    for reference in ("si_sdr_supervised", "si_sdri_supervised"):  # one separator per sweep: on its run
        if artifact_path is None and reference in table and table[reference].notna().any():
            client.log_metric(parent_id, reference, float(table[reference].mean()))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log_views(client, parent_id, table, objectives, folder, artifact_path)
        if artifact_path is None:  # what the sweep cost and which settings moved each objective: its own record
            log_cost(client, parent_id, rows, objectives, folder, reference_point, log)
            if settings:
                log_importances(client, parent_id, trial_outcomes(client, experiment_id, parent_id, rows, settings),
                                settings, list(objectives), folder, log)
    return table


def log_views(client, parent_id: str, table: pd.DataFrame, objectives: dict[str, str], folder: Path,
              artifact_path: str | None = None) -> None:
    """The frontier's files on the parent run: the summary table, the two plots and the interactive page."""
    summary_table(table, objectives).to_csv(folder / SUMMARY, index=False, float_format="%.4g")
    client.log_artifact(parent_id, str(folder / SUMMARY), artifact_path)
    for name, made in (("frontier.png", plot_frontier(folder / "frontier.png", table, objectives)),
                       ("dilemma.png", plot_dilemma(folder / "dilemma.png", table)),
                       ("frontier.html", write_page(folder / "frontier.html", table, objectives,
                                                    smoothness_column(table), verdict_notes(table)))):
        if made:
            client.log_artifact(parent_id, str(folder / name), artifact_path)


def refresh_frontier(reader: StageRows, objectives: dict[str, str]) -> bool:
    """The live frontier while the sweep runs: the parent's table, plots and page from the stages reported so
    far (no printing; cost and importance come once, at the end). False when nothing is reported yet or
    nothing changed since ``reader``'s last read (the files on the run are then still current)."""
    rows = reader.read()
    if rows.empty or not reader.changed:
        return False
    client, parent_id = reader.client, reader.parent_id
    with tempfile.TemporaryDirectory() as tmp:
        log_views(client, parent_id, frontier_table(rows, objectives), objectives, Path(tmp))
    return True


def view_name(objectives: dict[str, str]) -> str:
    """The artifact folder of a frontier drawn for ``objectives`` after the sweep, e.g.
    ``frontier_auroc-max_logp_drop_at_0.01-max``."""
    return "frontier_" + "_".join(f"{mlflow_name(name).replace('/', '-')}-{mode}" for name, mode in objectives.items())


def across(client, sweeps, objectives: dict[str, str], out: Path) -> pd.DataFrame:
    """One frontier over several experiments' stages, coloured by experiment, written to the folder ``out``
    (it belongs to none of their runs): the table, frontier.png, dilemma.png and frontier.html."""
    tables = [stage_rows(client, experiment.experiment_id, parent.info.run_id, list(objectives))
              .assign(experiment=experiment.name) for experiment, parent in sweeps]
    table = frontier_table(pd.concat([t for t in tables if not t.empty], ignore_index=True), objectives)
    print(format_table(table, objectives))
    out.mkdir(parents=True, exist_ok=True)
    summary_table(table, objectives).to_csv(out / SUMMARY, index=False, float_format="%.4g")
    plot_frontier(out / "frontier.png", table, objectives)
    plot_dilemma(out / "dilemma.png", table)
    write_page(out / "frontier.html", table, objectives, smoothness_column(table), verdict_notes(table))
    return table
