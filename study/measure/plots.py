"""Trial artifacts: tables as CSV, plots as PNG, audio as WAV. Plots carry titles, units and labels."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: trials run on servers and in Ray workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402


def save_figure(fig, path: Path) -> bool:
    """Lay out, write as PNG and free a figure; True (it was made)."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_matrix_csv(path: Path, matrix: torch.Tensor, sources) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prior \\ clips", *sources])
        for name, row in zip(sources, matrix.tolist()):
            writer.writerow([name, *(f"{v:.6g}" for v in row)])


def plot_cross_likelihood(path: Path, matrix: torch.Tensor, sources, title: str) -> None:
    k = len(sources)
    fig, ax = plt.subplots(figsize=(1.4 * k + 2.5, 1.2 * k + 1.8))
    image = ax.imshow(matrix.numpy(), cmap="viridis")
    ax.set_xticks(range(k), sources)
    ax.set_yticks(range(k), sources)
    ax.set_xlabel("clips of source")
    ax.set_ylabel("prior")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color="w", fontsize=9,
                    fontweight="bold" if i == j else None)
    fig.colorbar(image, ax=ax, label="mean log p (nats/sample)")
    ax.set_title(title)
    save_figure(fig, path)


def plot_noise_curve(path: Path, curve, sources, title: str) -> None:
    """In-class (solid) and out-of-class (dashed) mean log p of every prior versus added noise σ."""
    sigmas = [max(s, 1e-4) for s, _, _ in curve]  # σ = 0 drawn at 1e-4 on the log axis
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, name in enumerate(sources):
        line, = ax.plot(sigmas, [own[k].item() for _, own, _ in curve], "o-", label=f"{name}: own clips")
        ax.plot(sigmas, [other[k].item() for _, _, other in curve], "x--", color=line.get_color(),
                label=f"{name}: other sources")
    ax.set_xscale("log")
    ax.set_xlabel("added noise σ (σ = 0 shown at 1e-4)")
    ax.set_ylabel("mean log p (nats/sample)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, path)


def plot_level_trace(path: Path, sigmas, traces: dict[str, list[float]], baseline: float, title: str) -> None:
    """SI-SDR of the estimates after each annealing level, one line per start (``{label: trace}``), with the
    mixture-as-estimate baseline. A chain started at the true sources that holds them while the mixture
    start stays below says global inference fails, not the prior."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, trace in traces.items():
        ax.plot(range(len(trace)), trace, "o-", label=f"Langevin, {label}")
    ax.axhline(baseline, color="grey", ls="--", label="mixture as estimate")
    shown = max(len(trace) for trace in traces.values())
    ax.set_xticks(range(shown), [f"{s:.3g}" for s in sigmas[:shown]])
    ax.set_xlabel("annealing level σ (in order)")
    ax.set_ylabel("SI-SDR (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_likelihood_gap(path: Path, gaps: dict[str, torch.Tensor], title: str) -> None:
    """Σ_k log p_k(estimate) − Σ_k log p_k(truth) per mixture, one group of bars per start. Below zero the
    priors prefer the truth and the sampler did not reach it (inference fails); at or above zero with a poor
    SI-SDR the priors prefer a wrong answer (the prior fails)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(len(gaps), 1)
    for j, (label, gap) in enumerate(gaps.items()):
        ax.bar([i + j * width for i in range(len(gap))], gap.tolist(), width, label=label)
    ax.axhline(0.0, color="grey", lw=1)
    ax.set_xlabel("mixture")
    ax.set_ylabel("log p(estimates) − log p(truth) (nats)")
    ax.set_title(f"Likelihood gap: {title}\n< 0: inference failed; ≥ 0 with a poor SI-SDR: the prior is wrong",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_separator_trace(path: Path, trace: list[dict], selected_step: int, title: str) -> None:
    """The separator's SI-SDRi on the test mixtures and the priors' log p of its estimates on the selection
    mixtures, against its training step; the kept step marked (chosen by the log p alone)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [entry["step"] for entry in trace]
    ax.plot(steps, [entry.get("si_sdri", float("nan")) for entry in trace], "o-", color="C0", label="SI-SDRi (test)")
    ax.set_xlabel("separator training step")
    ax.set_ylabel("SI-SDRi (dB)", color="C0")
    other = ax.twinx()
    other.plot(steps, [entry["selection_logp"] for entry in trace], "s--", color="C1", label="priors' log p")
    other.set_ylabel("Σ log p of its estimates (nats, selection mixtures)", color="C1")
    ax.axvline(selected_step, color="grey", lw=1, ls=":")
    ax.set_title(f"{title}\nkept: step {selected_step} (most likely under the priors)", fontsize=9)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


GAP_SECONDS = 0.15  # the silence between joined crops: each crop is heard as its own example


def write_audio(folder: Path, mixtures, references, estimates, sources, sample_rate: int,
                gap_seconds: float = GAP_SECONDS) -> None:
    """mixture.wav, <source>_reference.wav and <source>_estimate.wav, each the given mixtures' crops
    ([B, T] and [B, K, T]) one after another with ``gap_seconds`` of silence between them."""
    gap = np.zeros(int(gap_seconds * sample_rate), np.float32)

    def write(name: str, crops) -> None:
        parts = [part for crop in crops for part in (crop.numpy().astype(np.float32), gap)][:-1]
        sf.write(folder / f"{name}.wav", np.concatenate(parts), sample_rate, subtype="FLOAT")

    folder.mkdir(parents=True, exist_ok=True)
    write("mixture", mixtures)
    for k, name in enumerate(sources):
        write(f"{name}_reference", references[:, k])
        write(f"{name}_estimate", estimates[:, k])
