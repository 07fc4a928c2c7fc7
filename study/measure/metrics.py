"""Discrimination, smoothness and separation metrics as pure functions returning flat, namespaced dicts.

Names (the README's metrics table; what each means and which trials report it: :mod:`study.measure.names`): ``auroc``, ``auroc/<source>``, ``auroc@<σ>``, ``logp_drop@<σ>``,
``bits_per_sample/<source>``, ``si_sdr``, ``si_sdr/<source>``, ``si_sdri``, ``sdr``, ``sdr/<source>``, and each
separation score's standard error over the mixtures, ``si_sdr_se``, ``si_sdri_se``, ``sdr_se``.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio, signal_distortion_ratio
from torchmetrics.functional.classification import binary_auroc


def per_source_auroc(loglik: torch.Tensor) -> torch.Tensor:
    """AUROC of prior k separating source k's clips (positives) from every other source's clips.

    loglik: [N, K_prior, K_source], log p_k (per sample) of the n-th clip of source j. -> [K].
    """
    n, k, _ = loglik.shape
    out = torch.empty(k, dtype=torch.float64)
    for prior in range(k):
        scores = loglik[:, prior, :].reshape(-1).double()
        labels = torch.zeros(n, k, dtype=torch.long)
        labels[:, prior] = 1
        out[prior] = binary_auroc(scores, labels.reshape(-1))
    return out


def discrimination_metrics(loglik: torch.Tensor, sources, suffix: str = "", name: str = "auroc") -> dict[str, float]:
    """``{name}{suffix}`` and, without a suffix, ``{name}/<source>`` (e.g. auroc, auroc@0.01, auroc/sin)."""
    aurocs = per_source_auroc(loglik)
    metrics = {f"{name}{suffix}": aurocs.mean().item()}
    if not suffix:
        metrics.update({f"{name}/{s}": a.item() for s, a in zip(sources, aurocs)})
    return metrics


def in_class(loglik: torch.Tensor) -> torch.Tensor:
    """log p_k of source k's own clips: [N, K, K] -> [N, K]."""
    return loglik.diagonal(dim1=1, dim2=2)


def bits_per_sample(loglik: torch.Tensor, sources) -> dict[str, float]:
    bits = -in_class(loglik).double().mean(0) / math.log(2)
    return {f"bits_per_sample/{s}": b.item() for s, b in zip(sources, bits)}


def logp_drop(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    """Mean over sources of E[log p_k(x + σε)] − E[log p_k(x)] on in-class clips, nats per sample."""
    return (in_class(noisy).double().mean(0) - in_class(clean).double().mean(0)).mean().item()


def cross_likelihood(loglik: torch.Tensor) -> torch.Tensor:
    """Mean log p (nats per sample) of every prior (rows) on every source's clips (columns): [K, K]."""
    return loglik.double().mean(0)


def si_sdr(estimates: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """SI-SDR in dB as defined by Le Roux et al. 2019 (and asteroid), on mean-removed signals. [..., T] -> [...]."""
    return scale_invariant_signal_distortion_ratio(estimates.double(), references.double(), zero_mean=True)


@contextlib.contextmanager
def single_threaded():
    """Run torch CPU ops on one thread, then restore the thread count.

    With torch 2.11's MKL, a batched ``torch.linalg.solve`` fails ("Pivots given to lu_solve must all be
    greater or equal to 1") once ``torch.set_num_threads(n > 1)`` has been called, which every trial does.
    BSS-Eval's filter solve is small, so one thread costs little.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def mixture_si_sdr(mixtures: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """SI-SDR of doing nothing, the mixture used as every source's estimate: [B, T], [B, K, T] -> [B, K]."""
    return si_sdr(mixtures.double().unsqueeze(1).expand_as(references), references.double())


def standard_error(values: torch.Tensor) -> float:
    """The standard error of the mean of ``values`` [N] (N ≥ 2): sample standard deviation / √N."""
    return (values.double().std(unbiased=True) / math.sqrt(len(values))).item()


def separation_metrics(estimates: torch.Tensor, references: torch.Tensor, mixtures: torch.Tensor, sources,
                       sdr_filter_length: int = 512) -> dict[str, float]:
    """SI-SDR, SI-SDRi (over the mixture used as every source's estimate) and BSS-Eval v3 SDR, in dB.

    estimates, references: [B, K, T]; mixtures: [B, T]. SDR is torchmetrics' BSS-Eval v3 with a
    ``sdr_filter_length``-tap distortion filter, which (unlike museval's v4) is gain-invariant. The filter
    absorbs part of the error, so SDR reads somewhat above SI-SDR on short clips.
    """
    est, ref = estimates.double(), references.double()
    si = si_sdr(est, ref)  # [B, K]
    baseline = mixture_si_sdr(mixtures, ref)
    # Pure tones make the 512-tap Toeplitz system singular; a 1e-8 diagonal load keeps it solvable and moves
    # well-conditioned results by < 1e-5 dB.
    with single_threaded():
        sdr = signal_distortion_ratio(est, ref, filter_length=sdr_filter_length, load_diag=1e-8)
    metrics = {"si_sdr": si.mean().item(), "si_sdri": (si - baseline).mean().item(),
               "si_sdr_mixture": baseline.mean().item(), "sdr": sdr.mean().item()}
    if len(est) > 1:  # the mixtures are the sample: each score's standard error over them
        metrics.update({f"{name}_se": standard_error(values.mean(1))
                        for name, values in (("si_sdr", si), ("si_sdri", si - baseline), ("sdr", sdr))})
    for k, name in enumerate(sources):
        metrics[f"si_sdr/{name}"] = si[:, k].mean().item()
        metrics[f"sdr/{name}"] = sdr[:, k].mean().item()
    return metrics
