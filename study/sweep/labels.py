"""A trial's short label, e.g. ``flow σ*0.077 ft lr=0.001``: its name in MLflow and on the console."""
from __future__ import annotations

from study.sweep.config import SweepConfig


SHORT_FAMILY = {"flowavenet": "flow", "wavenet": "wn", "flowavenet_nc": "flow-nc", "wavenet_nc": "wn-nc",
                "scorenet": "score"}
SHORT_SCHEDULE = {"scratch": "scratch", "from_clean": "ft", "chained": "chain"}
NAMED_BY_DEFAULT = {"prior.name", "schedule.sigma", "schedule.kind"}  # already in every label


def short_value(value) -> str:
    """A value as a label shows it: floats to 3 digits, paths by their last part, at most 16 characters."""
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value).rstrip("/").rsplit("/", 1)[-1]
    return text if len(text) <= 16 else text[:15] + "…"


def leaves(key: str, value) -> dict[str, object]:
    """The dotted settings one space value assigns (a ``variant`` mapping assigns from the top level)."""
    if not isinstance(value, dict):
        return {key: value}
    prefix = "" if key == "variant" else key + "."
    flat = {}
    for name, inner in value.items():
        flat.update(leaves(f"{prefix}{name}", inner))
    return flat


def varied_settings(sweep: SweepConfig) -> set[str]:
    """The dotted settings whose value differs between trials: a scalar dimension's key, and for mapping
    values (a prior, a variant) the leaves that differ between the dimension's values."""
    varied = set()
    for key, dim in sweep.space.items():
        if dim.kind not in ("grid", "choice") or not any(isinstance(v, dict) for v in dim.values):
            varied.add(key)
            continue
        assigned = [leaves(key, value) for value in dim.values]
        names = set().union(*assigned)
        varied |= {name for name in names if len({repr(a.get(name, "<unset>")) for a in assigned}) > 1}
    return varied


def trial_label(cfg, params: dict, varied: set[str]) -> str:
    """What tells trials apart, first and short (MLflow's run tree cuts names at about 15 characters):
    family, σ*, schedule, then every other varied setting as ``leaf=value``, e.g. ``flow σ*0.077 ft lr=0.001``.
    A variant that names itself (its ``name``) is shown by that name alone: it was chosen to say the rest."""
    words = [SHORT_FAMILY.get(cfg.prior.name, cfg.prior.name), f"σ*{cfg.schedule.sigma:g}",
             SHORT_SCHEDULE.get(cfg.schedule.kind, cfg.schedule.kind)]
    for key, value in params.items():
        assigned = leaves(key, value)
        if key == "variant" and "name" in assigned and "name" in varied:
            words.append(str(assigned["name"]))
            continue
        words += [f"{name.rsplit('.', 1)[-1]}={short_value(v)}" for name, v in assigned.items()
                  if name in varied and name not in NAMED_BY_DEFAULT]
    return " ".join(words)


def labelled(cfg, params: dict, varied: set[str], tune_id: str) -> str:
    """The trial's name in MLflow and on the console: its label and the end of Tune's id (for repeats)."""
    return f"{trial_label(cfg, params, varied)} · {tune_id[-5:]}"
