"""The Pareto set agrees with a brute-force definition."""
import itertools

import numpy as np
import pytest

from study.frontier import pareto_mask, parse_objectives


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
