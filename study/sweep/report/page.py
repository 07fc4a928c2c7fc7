"""The frontier as one self-contained interactive page (``frontier.html``, Plotly), readable offline inside
MLflow's artifact viewer: the Pareto front with every stage's settings and objectives on hover, the same
chains started at the true sources on a panel of their own (so they do not squash the real scores),
parallel coordinates over the objectives and settings, and the discriminative-versus-smooth scatter."""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

HOVER = ["experiment", "run", "stage", "stage_sigma", "architecture", "schedule", "target_sigma", "shared_by", "si_sdri",
         "si_sdri_se", "vs_nothing", "likelihood_gap", "stopped_early"]
MARKER_SIZE = 11  # px: Plotly's default 6 is hard to find and to hover


def colour_by(table: pd.DataFrame) -> str | None:
    """What tells points apart by colour: the experiment on a frontier across experiments, else the family."""
    return next((c for c in ("experiment", "architecture") if c in table), None)


def hover_columns(table: pd.DataFrame, objectives) -> dict[str, str | bool]:
    """The columns a hover box shows, numbers with 4 significant digits (Plotly's d3 format)."""
    return {c: ":.4g" if pd.api.types.is_float_dtype(table[c]) else True
            for c in dict.fromkeys([*HOVER, *objectives]) if c in table}


def styled(fig: go.Figure) -> go.Figure:
    """Markers large enough to see and hover, outlined so that overlapping points stay apart."""
    fig.update_traces(selector={"mode": "markers"}, marker={"size": MARKER_SIZE, "line": {"width": 1, "color": "white"}})
    return fig


def front_figure(table: pd.DataFrame, objectives: dict[str, str]) -> go.Figure | None:
    x, y = list(objectives)[:2] if len(objectives) > 1 else (None, None)
    if x is None or x not in table or y not in table or table.dropna(subset=[x, y]).empty:
        return None
    shown = table.dropna(subset=[x, y]).assign(pareto=lambda t: t["pareto"].map({True: "Pareto", False: "dominated"}))
    fig = px.scatter(shown, x=x, y=y, color=colour_by(shown),
                     symbol="pareto", hover_data=hover_columns(shown, objectives),
                     title=f"Pareto front: {y} ({objectives[y]}) against {x} ({objectives[x]})")
    front = shown[shown["pareto"] == "Pareto"].sort_values(x)
    fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="lines", name="Pareto front", line={"color": "black"},
                             hoverinfo="skip"))  # a point on the front shows its trial, not the line
    if "si_sdr_mixture" in shown and y == "si_sdr" and shown["si_sdr_mixture"].notna().any():
        baseline = float(shown["si_sdr_mixture"].mean())
        fig.add_hline(y=baseline, line_dash="dash", annotation_text="doing nothing (the mixture as every estimate)")
    return styled(fig)


def oracle_figure(table: pd.DataFrame, objectives: dict[str, str]) -> go.Figure | None:
    """The same samplers started at the true sources: their own panel and range."""
    if "si_sdri_oracle_start" not in table or table["si_sdri_oracle_start"].isna().all():
        return None
    x = next(iter(objectives))
    shown = table.dropna(subset=["si_sdri_oracle_start"])
    return styled(px.scatter(shown, x=x, y="si_sdri_oracle_start", hover_data=hover_columns(shown, objectives),
                             color=colour_by(shown),
                             title="Started at the true sources: does the prior hold them? (SI-SDRi, dB)"))


def parallel_figure(table: pd.DataFrame, objectives: dict[str, str]) -> go.Figure | None:
    """Settings and objectives on parallel axes; the architecture (text) as an axis of its own, its families
    numbered in alphabetical order."""
    numeric = [c for c in dict.fromkeys(["target_sigma", "stage_sigma", "stage", *objectives,
                                         "si_sdri", "likelihood_gap"])
               if c in table and pd.api.types.is_numeric_dtype(table[c]) and table[c].notna().any()]
    first = next(iter(objectives))
    if len(numeric) < 2 or first not in numeric:
        return None
    shown = table.dropna(subset=[first])
    dimensions = [{"label": c, "values": shown[c]} for c in numeric]
    if "architecture" in shown and shown["architecture"].notna().any():
        families = sorted(shown["architecture"].dropna().unique())
        dimensions.insert(0, {"label": "architecture", "values": shown["architecture"].map(families.index),
                              "tickvals": list(range(len(families))), "ticktext": families})
    return go.Figure(go.Parcoords(line={"color": shown[first], "colorscale": "Viridis", "showscale": True},
                                  dimensions=dimensions),
                     layout={"title": f"Settings and objectives, coloured by {first}"})


def dilemma_figure(table: pd.DataFrame, smooth: str | None, objectives) -> go.Figure | None:
    if smooth is None or "auroc" not in table or table.dropna(subset=["auroc", smooth]).empty:
        return None
    shown = table.dropna(subset=["auroc", smooth])
    return styled(px.scatter(shown, x=smooth, y="auroc", color=colour_by(shown),
                             hover_data=hover_columns(shown, objectives),
                             title="Discriminative (auroc) versus smooth (log p drop under a little noise)"))


def write_page(path: Path, table: pd.DataFrame, objectives: dict[str, str], smooth: str | None,
               notes: list[str] = ()) -> bool:
    """Write ``frontier.html`` (Plotly's script inlined once: it opens without a network), with ``notes`` (what
    the reader must know before trusting a point, e.g. separations no better than doing nothing) on top."""
    parallel = parallel_figure(table, objectives)
    figures = [f for f in (front_figure(table, objectives), oracle_figure(table, objectives),
                           dilemma_figure(table, smooth, objectives)) if f is not None]
    if not figures and parallel is None:
        return False
    parts = [figure.to_html(full_html=False, include_plotlyjs=False) for figure in figures]
    if parallel is not None:
        parts.insert(min(2, len(parts)), drawn_when_opened(parallel))
    shown = "".join(f"<p><b>{html.escape(note)}</b></p>" for note in notes)
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>Study frontier</title>"
                    f"<script>{get_plotlyjs()}</script></head><body>" + shown + "".join(parts) + "</body></html>",
                    encoding="utf-8")
    return True


def drawn_when_opened(figure: go.Figure) -> str:
    """A figure folded under a heading and drawn the first time it is opened: parallel coordinates are WebGL,
    which without a GPU took about 2 s of the page's 4 s at 1 000 trials (benchmarks/scale.py)."""
    data = figure.to_json().replace("</", "<\\/")  # nothing in the JSON may end the script early
    return ("<details id='parallel'><summary>Settings and objectives on parallel axes (drawn when opened)"
            "</summary><div id='parallel-plot'></div></details><script>"
            "document.getElementById('parallel').addEventListener('toggle', function draw(event) {"
            " if (!event.target.open) return; event.target.removeEventListener('toggle', draw);"
            f" var figure = {data}; Plotly.newPlot('parallel-plot', figure.data, figure.layout); }});</script>")
