"""The Pareto set agrees with a brute-force definition."""
import itertools

import numpy as np
import pytest

from study.measure.pareto import pareto_mask
from study.sweep.report.command import parse_objectives


def brute_force(values, directions):
    sign = [1 if d == "max" else -1 for d in directions]
    keep = []
    for i, p in enumerate(values):
        dominated = False
        for j, q in enumerate(values):
            if i == j:
                continue
            ge = all(s * qa >= s * pa for s, pa, qa in zip(sign, p, q))
            gt = any(s * qa > s * pa for s, pa, qa in zip(sign, p, q))
            dominated |= ge and gt
        keep.append(not dominated)
    return np.array(keep)


@pytest.mark.parametrize("seed,directions", list(itertools.product(range(5), [("max", "max"), ("max", "min"),
                                                                                ("min", "max", "max")])))
def test_pareto_mask_matches_brute_force(seed, directions):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(40, len(directions))).astype(float)  # many ties on purpose
    assert (pareto_mask(values, directions) == brute_force(values, directions)).all()


def test_simple_front_and_objective_parsing():
    values = np.array([[0.9, -6.0], [0.8, -5.0], [0.7, -7.0], [0.9, -6.5]])
    assert pareto_mask(values, ["max", "max"]).tolist() == [True, True, False, False]
    assert parse_objectives(["auroc:max", "logp_drop@0.01:max"]) == {"auroc": "max", "logp_drop@0.01": "max"}
    with pytest.raises(ValueError, match="METRIC:max"):
        parse_objectives(["auroc"])


def test_frontier_plot_draws_the_baseline_marks_diverged_trials_and_says_which_way_is_better(tmp_path):
    """Every point below the mixture baseline is visibly below it; a diverged separation is a red cross."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from study.sweep.report import frontier

    table = frontier.with_pareto(pd.DataFrame([
        {"run": "a", "architecture": "wavenet", "schedule": "from_clean", "stage": 1, "stage_sigma": 0.077,
         "auroc": 0.9, "si_sdr": -5.0, "si_sdr_mixture": -4.6, "separation_diverged": 0.0,
         "si_sdr_oracle_start": 12.0},
        {"run": "b", "architecture": "flowavenet", "schedule": "from_clean", "stage": 1, "stage_sigma": 0.359,
         "auroc": 0.7, "si_sdr": float("nan"), "si_sdr_mixture": float("nan"), "separation_diverged": 1.0},
    ]), {"auroc": "max", "si_sdr": "max"})
    drawn = {}
    real_savefig = plt.Figure.savefig

    def keep_axes(figure, *args, **kwargs):
        drawn["axes"], drawn["oracle"] = figure.axes
        return real_savefig(figure, *args, **kwargs)

    plt.Figure.savefig = keep_axes
    try:
        assert frontier.plot_frontier(tmp_path / "frontier.png", table, {"auroc": "max", "si_sdr": "max"})
    finally:
        plt.Figure.savefig = real_savefig
    ax = drawn["axes"]
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("do nothing: mixture as every estimate (-4.60 dB)") for label in labels)
    assert "separation diverged (no score)" in labels
    # the diagnosis beside the score, on a panel of its own: its 12 dB do not stretch the frontier's range
    assert drawn["oracle"].get_title() == "started at the true sources"
    assert [c.get_offsets().tolist() for c in drawn["oracle"].collections] == [[[0.9, 12.0]]]
    assert ax.get_ylim()[1] < 0
    assert "diverged" in [text.get_text() for text in ax.texts]
    assert "higher is better" in ax.get_xlabel() and "higher is better" in ax.get_ylabel()
    summary = frontier.summary_table(table, {"auroc": "max", "si_sdr": "max"})
    assert list(summary.columns[:4]) == ["auroc", "si_sdr", "run", "stage"]


def test_a_shared_stage_is_one_row_unless_trials_scored_it_differently():
    import pandas as pd

    from study.sweep.report.frontier import once_per_stage

    nan = float("nan")
    table = pd.DataFrame([
        # the σ=0.077 trial only trained through the clean stage; the σ=0 trial separated it
        {"run": "a", "run_id": "1", "status": "FINISHED", "target_sigma": 0.077, "schedule": "from_clean",
         "stage_key": "clean", "stage": 0, "auroc": 0.5, "si_sdri": nan},
        {"run": "b", "run_id": "2", "status": "FINISHED", "target_sigma": 0.0, "schedule": "from_clean",
         "stage_key": "clean", "stage": 0, "auroc": 0.5, "si_sdri": 1.5},
        # same stage separated otherwise (another sampler): its own row
        {"run": "c", "run_id": "3", "status": "FINISHED", "target_sigma": 0.0, "schedule": "from_clean",
         "stage_key": "clean", "stage": 0, "auroc": 0.5, "si_sdri": -2.0},
        {"run": "a", "run_id": "1", "status": "FINISHED", "target_sigma": 0.077, "schedule": "from_clean",
         "stage_key": "noisy", "stage": 1, "auroc": 0.4, "si_sdri": 0.3},
    ])
    rows = once_per_stage(table)
    assert len(rows) == 3
    assert rows.set_index("si_sdri")["shared_by"].to_dict() == {1.5: 2, -2.0: 1, 0.3: 1}
    assert rows.loc[rows["si_sdri"] == 1.5, "run"].item() == "b"  # the row that carries the scores


def test_the_interactive_page_names_every_stage_and_works_offline(tmp_path):
    import json

    import pandas as pd

    from study.sweep.report.frontier import frontier_table, verdict_notes
    from study.sweep.report.page import write_page

    objectives = {"auroc": "max", "si_sdr": "max"}
    table = frontier_table(pd.DataFrame([
        {"run": "wn σ*0 ft · 00000", "stage": 0, "stage_sigma": 0.0, "architecture": "wavenet", "auroc": 0.9,
         "si_sdr": -6.0, "si_sdri": -1.0, "si_sdri_se": 0.2, "separation_moved": 0.5, "si_sdr_mixture": -5.0,
         "si_sdri_oracle_start": 30.0, "logp_drop@0.01": -0.5},
        {"run": "flow σ*0.077 ft · 00001", "stage": 1, "stage_sigma": 0.077, "architecture": "flowavenet",
         "auroc": 0.7, "si_sdr": -4.0, "si_sdri": 1.0, "si_sdri_se": 0.8, "separation_moved": 0.4,
         "si_sdr_mixture": -5.0, "si_sdri_oracle_start": 20.0, "logp_drop@0.01": -0.1},
        {"run": "flow σ*0 ft · 00002", "stage": 1, "stage_sigma": 0.0, "architecture": "flowavenet",
         "auroc": 0.95, "si_sdr": -7.0, "si_sdri": 0.0003, "si_sdri_se": 0.0001, "separation_moved": 1e-4,
         "si_sdr_mixture": -5.0, "logp_drop@0.01": -0.3},
    ]), objectives)
    assert list(table["vs_nothing"]) == ["worse than doing nothing", "indistinguishable from doing nothing",
                                         "start returned unchanged (moved 0.0001)"]
    assert write_page(tmp_path / "frontier.html", table, objectives, "logp_drop@0.01", verdict_notes(table))
    page = (tmp_path / "frontier.html").read_text()
    assert all(json.dumps(label)[1:-1] in page for label in table["run"])  # Plotly's JSON escapes σ and ·
    assert "<script src" not in page and page.count("Plotly.newPlot") == 4  # Plotly inlined: nothing fetched; 4 views
    assert "<details id='parallel'>" in page  # the WebGL view, drawn when opened
    # the points that are not better than doing nothing are said above the plots, with their runs
    assert "1 Pareto point(s): start returned unchanged" in page and "flow σ*0 ft · 00002" in page.split("<div")[0]
    assert "1 Pareto point(s): indistinguishable from doing nothing" in page.split("<div")[0]
    assert ":.4g}" in page  # hover values rounded to 4 significant digits
    assert '"ticktext":["flowavenet","wavenet"]' in page.replace(" ", "")  # an architecture axis
    assert '"size":11' in page.replace(" ", "")  # markers large enough to hover


def test_one_frontier_across_experiments_is_coloured_by_experiment_and_changes_no_run(tmp_path, capsys):
    """``python -m study.frontier EXP1 EXP2``: the stages of two studies (real MLflow runs, as sweeps leave
    them) on one Pareto set; written to a folder of its own."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from study.sweep.report.command import main
    from study.sweep.tracking import PARENT_TAG, ROLE_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    for name, points in (("first", [(0.9, -0.5), (0.6, -0.4)]), ("second", [(0.8, -0.1), (0.5, -0.6)])):
        experiment = client.create_experiment(name)
        parent = client.create_run(experiment, run_name=name, tags={ROLE_TAG: "sweep"}).info.run_id
        for i, (auroc, drop) in enumerate(points):
            run = client.create_run(experiment, run_name=f"{name} trial {i}",
                                    tags={ROLE_TAG: "trial", PARENT_TAG: parent, "study.stage0.key": f"{name}{i}"})
            for key, value in (("prior.name", "wavenet"), ("schedule.kind", "scratch"), ("schedule.sigma", "0.0")):
                client.log_param(run.info.run_id, key, value)
            for metric, value in (("auroc", auroc), ("logp_drop_at_0.01", drop), ("stage", 0), ("stage_sigma", 0)):
                client.log_metric(run.info.run_id, metric, value, step=0)
            client.set_terminated(run.info.run_id)
    before = {a.path for e in ("first", "second") for r in client.search_runs(
        [client.get_experiment_by_name(e).experiment_id]) for a in client.list_artifacts(r.info.run_id)}
    out = tmp_path / "across"
    code = main(["first", "second", "--tracking-uri", uri, "--objectives", "auroc:max", "logp_drop@0.01:max",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out / "study_summary.csv")
    assert sorted(table["experiment"]) == ["first", "first", "second", "second"]
    assert sorted(table[table["pareto"]]["run"]) == ["first trial 0", "second trial 0"]  # across both studies
    page = (out / "frontier.html").read_text()
    assert '"first"' in page and '"second"' in page and (out / "frontier.png").stat().st_size > 0
    capsys.readouterr()
    # a misspelt objective: exit 2 with a suggestion, nothing written; the full list on request
    assert main(["first", "--tracking-uri", uri, "--objectives", "aurok:max"]) == 2
    assert ("no trial of 'first' logged 'aurok'; did you mean 'auroc'? (--list-metrics shows all 4 they logged)"
            in capsys.readouterr().err)
    assert main(["first", "--tracking-uri", uri, "--list-metrics"]) == 0
    assert capsys.readouterr().out.split() == ["auroc", "logp_drop@0.01", "stage", "stage_sigma"]
    after = {a.path for e in ("first", "second") for r in client.search_runs(
        [client.get_experiment_by_name(e).experiment_id]) for a in client.list_artifacts(r.info.run_id)}
    assert after == before  # nothing logged to any run
    assert main(["first", "nope", "--tracking-uri", uri]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err


def test_the_separators_score_as_an_objective_gets_the_same_reference_lines(tmp_path):
    """si_sdri_amortised on the frontier: the do-nothing line at 0 dB and the supervised ConvTasNet's line."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from study.sweep.report import frontier

    objectives = {"auroc": "max", "si_sdri_amortised": "max"}
    table = frontier.with_pareto(pd.DataFrame([
        {"run": run, "architecture": "scorenet", "schedule": "scratch", "stage": 0, "stage_sigma": 3.0,
         "auroc": auroc, "si_sdri_amortised": gain, "si_sdri_amortised_se": 0.5, "si_sdri_supervised": 10.5}
        for run, auroc, gain in (("a", 0.9, 6.2), ("b", 0.95, 0.0))]), objectives)
    drawn = {}
    real_savefig = plt.Figure.savefig

    def keep_axes(figure, *args, **kwargs):
        drawn["axes"] = figure.axes[0]
        return real_savefig(figure, *args, **kwargs)

    plt.Figure.savefig = keep_axes
    try:
        assert frontier.plot_frontier(tmp_path / "frontier.png", table, objectives)
    finally:
        plt.Figure.savefig = real_savefig
    labels = drawn["axes"].get_legend_handles_labels()[1]
    assert "do nothing: mixture as every estimate" in labels
    assert "supervised ConvTasNet (10.50 dB)" in labels
