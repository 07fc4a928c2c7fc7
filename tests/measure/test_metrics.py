"""Metrics agree with independent computations."""
import math

import torch

from study.measure.metrics import discrimination_metrics, logp_drop, per_source_auroc, separation_metrics


def rank_auroc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Mann–Whitney: the probability that a random positive outscores a random negative (ties count ½)."""
    greater = (pos.view(-1, 1) > neg.view(1, -1)).double().mean()
    ties = (pos.view(-1, 1) == neg.view(1, -1)).double().mean()
    return (greater + 0.5 * ties).item()


def test_auroc_matches_rank_statistic():
    torch.manual_seed(0)
    n, k = 50, 3
    loglik = torch.randn(n, k, k) + 0.8 * torch.eye(k)  # prior k likes source k a bit
    loglik[:5, 0, 1] = loglik[:5, 0, 0]  # some ties
    aurocs = per_source_auroc(loglik)
    for prior in range(k):
        pos = loglik[:, prior, prior]
        neg = torch.cat([loglik[:, prior, j] for j in range(k) if j != prior])
        assert abs(aurocs[prior].item() - rank_auroc(pos, neg)) < 1e-6  # torchmetrics sums in float32
    metrics = discrimination_metrics(loglik, ["a", "b", "c"])
    assert abs(metrics["auroc"] - aurocs.mean().item()) < 1e-12 and set(metrics) == {"auroc", "auroc/a", "auroc/b", "auroc/c"}
    assert set(discrimination_metrics(loglik, ["a", "b", "c"], "@0.01")) == {"auroc@0.01"}


def test_perfect_and_paradoxical_priors():
    loglik = torch.full((10, 2, 2), -1.0)
    loglik[:, 0, 0] = loglik[:, 1, 1] = 0.0
    assert per_source_auroc(loglik).tolist() == [1.0, 1.0]
    assert per_source_auroc(-loglik).tolist() == [0.0, 0.0]  # the likelihood paradox


def test_logp_drop_is_mean_in_class_change():
    clean = torch.zeros(4, 2, 2)
    noisy = clean.clone()
    noisy[:, 0, 0] = -3.0
    noisy[:, 1, 1] = -1.0
    noisy[:, 0, 1] = -100.0  # out-of-class scores do not count
    assert logp_drop(clean, noisy) == -2.0


def si_sdr_formula(est, ref):
    est, ref = est - est.mean(-1, keepdim=True), ref - ref.mean(-1, keepdim=True)
    target = (est * ref).sum(-1, keepdim=True) / (ref * ref).sum(-1, keepdim=True) * ref
    return 10 * torch.log10(target.pow(2).sum(-1) / (est - target).pow(2).sum(-1))


def test_separation_metrics_match_formula_and_are_gain_invariant():
    torch.manual_seed(0)
    torch.set_num_threads(2)  # regression: batched solves broke after set_num_threads with MKL
    ref = torch.randn(3, 2, 2048, dtype=torch.float64)
    est = ref + 0.3 * torch.randn_like(ref)
    mixture = ref.mean(1)
    m = separation_metrics(est, ref, mixture, ["x", "y"])
    expected = si_sdr_formula(est, ref)
    assert abs(m["si_sdr"] - expected.mean().item()) < 1e-9
    assert abs(m["si_sdr/y"] - expected[:, 1].mean().item()) < 1e-9
    baseline = si_sdr_formula(mixture.unsqueeze(1).expand_as(ref), ref)
    assert abs(m["si_sdri"] - (expected - baseline).mean().item()) < 1e-9
    # a half-volume estimate scores the same SI-SDR and (BSS-Eval v3) SDR
    half = separation_metrics(0.5 * est, ref, mixture, ["x", "y"])
    assert abs(half["si_sdr"] - m["si_sdr"]) < 1e-9 and abs(half["sdr"] - m["sdr"]) < 1e-6
    # for white-noise errors SDR ≈ SI-SDR (the 512-tap filter absorbs ≈ 512/2048 of the error energy)
    assert abs(m["sdr"] - m["si_sdr"]) < 10 * math.log10(1 / (1 - 512 / 2048)) + 0.3
