"""Every metric name the reports and the separation write by hand is one the one list knows, so a misspelt
name there fails here instead of drawing an empty column."""
from study.measure.names import AMORTISED, AMORTISED_SCORES, FAMILIES, PLAIN
from study.sweep.report import frontier, page, rows

TABLE_COLUMNS = {"experiment", "run", "architecture", "schedule", "target_sigma", "shared_by", "vs_nothing",
                 "stopped_early"}  # the frontier table's own columns, not metrics


def test_the_reports_name_only_known_metrics():
    named = {*rows.CONTEXT_METRICS, *frontier.UNITS, *frontier.SEPARATION_SCORES, *page.HOVER}
    assert {name for name in named if name.partition("@")[0] not in FAMILIES} <= TABLE_COLUMNS


def test_the_separators_metrics_are_declared_and_plain():
    assert {f"{name}_amortised" for name in AMORTISED_SCORES} <= AMORTISED <= PLAIN
    assert {"si_sdri_amortised_se", "likelihood_gap_amortised", "amortised_speedup"} <= AMORTISED
