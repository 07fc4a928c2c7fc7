"""Pareto ranking over several objectives, for the scheduler that stops trials and the plots that show them.

One sign convention: an objective's direction (``"max"`` or ``"min"``) becomes :func:`better`, +1 or −1, and
values multiplied by it are larger-is-better (:func:`oriented`). Whoever needs the other form (Optuna's
hypervolume minimises) negates that, in one visible place.
"""
from __future__ import annotations

import math

import numpy as np

DIRECTIONS = ("max", "min")


def better(direction: str) -> float:
    """+1 for an objective to maximise, −1 for one to minimise: multiplied in, larger is better."""
    if direction not in DIRECTIONS:
        raise ValueError(f"an objective's direction is 'max' or 'min', not {direction!r}")
    return 1.0 if direction == "max" else -1.0


def oriented(values, directions) -> np.ndarray:
    """``values`` [N, M] with each column multiplied by :func:`better` of its direction: larger is better."""
    return np.asarray(values, dtype=float) * np.array([better(d) for d in directions])


def pareto_mask(values, directions) -> np.ndarray:
    """True for points no other point dominates. values: [N, M]; directions: "max"/"min" per column."""
    v = oriented(values, directions)
    at_least = (v[None, :, :] >= v[:, None, :]).all(-1)  # [i, j]: j is at least as good as i everywhere
    strictly = (v[None, :, :] > v[:, None, :]).any(-1)
    return ~(at_least & strictly).any(1)


def fronts(points: list[tuple[float, ...]]) -> list[int]:
    """Each point's non-dominated front (0 is the Pareto set); larger is better in every coordinate."""
    values = np.asarray(points, dtype=float)
    front = np.full(len(values), -1)
    level = 0
    while (front < 0).any():
        left = np.flatnonzero(front < 0)
        front[left[pareto_mask(values[left], ["max"] * values.shape[1])]] = level
        level += 1
    return front.tolist()


def crowding(points: list[tuple[float, ...]]) -> list[float]:
    """NSGA-II crowding distance of each point among ``points`` (one front): larger is less crowded."""
    distance = [0.0] * len(points)
    for axis in range(len(points[0]) if points else 0):
        order = sorted(range(len(points)), key=lambda i: points[i][axis])
        low, high = points[order[0]][axis], points[order[-1]][axis]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(order, order[1:], order[2:]):
            distance[here] += (points[after][axis] - points[before][axis]) / (high - low)
    return distance


def ranking(points: list[tuple[float, ...]]) -> list[tuple[int, float]]:
    """(front, −crowding) of each point: smaller is better; equal points rank equally."""
    front = fronts(points)
    rank = [(0, 0.0)] * len(points)
    for level in set(front):
        members = [i for i in range(len(points)) if front[i] == level]
        for i, distance in zip(members, crowding([points[i] for i in members])):
            rank[i] = (level, -distance)
    return rank
