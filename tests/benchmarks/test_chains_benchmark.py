"""benchmarks.chains: the selection figures of several chains per mixture."""
import pytest
import torch

from benchmarks.chains import rank_chains


def test_chains_are_ranked_per_mixture_by_their_bound():
    gain = torch.tensor([[0.0, 1.0], [2.0, -1.0]])  # [chains, mixtures] SI-SDRi
    gap = torch.tensor([[-5.0, 0.0], [-1.0, -3.0]])  # mixture 0 prefers chain 1, mixture 1 chain 0
    figures = rank_chains(gain, gap)
    assert figures["chosen_by_bound_si_sdri"] == pytest.approx(1.5)  # (2 + 1) / 2
    assert figures["mean_chain_si_sdri"] == pytest.approx(0.5)
    assert figures["best_with_truth_si_sdri"] == pytest.approx(1.5)
    assert figures["spread_across_chains_db"] == pytest.approx(2.0)  # (2 − 0 + 1 − (−1)) / 2
    worst = rank_chains(gain, -gap)  # a bound that prefers the worse chain picks it
    assert worst["chosen_by_bound_si_sdri"] == pytest.approx(-0.5)
