"""Cut a grouped K-source prior into single-source priors and stack single-source priors into one.

Grouped convolutions keep the sources fully independent, and every tensor of a prior's state stores the
group-major axis first (see :mod:`models.layers`), so source k's weights are the k-th slice along dim 0.
"""
from __future__ import annotations

import dataclasses

import torch

from .base import Prior


def _build(prior: Prior, num_sources: int) -> Prior:
    return type(prior)(dataclasses.replace(prior.settings, num_sources=num_sources))


def select_source(prior: Prior, k: int) -> Prior:
    """A single-source prior with exactly the weights source ``k`` has in ``prior``."""
    if not 0 <= k < prior.num_sources:
        raise IndexError(f"source {k} out of range for a prior of {prior.num_sources} sources")
    single = _build(prior, 1)
    n = prior.num_sources
    state = {name: (t.chunk(n, dim=0)[k].clone() if t.dim() else t.clone())
             for name, t in prior.state_dict().items()}
    single.load_state_dict(state)
    return single.to(next(prior.parameters()).device)


def stack_sources(priors: list[Prior]) -> Prior:
    """One grouped prior whose source k is ``priors[k]`` (all built with the same hyper-parameters)."""
    first = priors[0]
    if any(type(p) is not type(first) or p.hparams != first.hparams for p in priors):
        raise ValueError("stack_sources needs single-source priors of one kind and one set of hyper-parameters")
    grouped = _build(first, len(priors))
    states = [p.state_dict() for p in priors]
    state = {name: (torch.cat([s[name] for s in states]) if t.dim() else t.clone())
             for name, t in states[0].items()}
    grouped.load_state_dict(state)
    return grouped
