"""A supervised reference line: torchaudio's ConvTasNet (Luo & Mesgarani 2019) trained on mixtures of the same
training sources and scored on the same test mixtures as the generative separation.

It answers the question a researcher asks next to every SI-SDRi of the priors: how far is this from what I
would otherwise use? The toy sources come in a fixed order (sin, square, saw, triangle), so the network's
output k is source k and no permutation search is needed. It is trained with the negative SI-SDR.
"""
from __future__ import annotations

from typing import Callable

import torch
from torchaudio.models import ConvTasNet

from study.config.schema import SeparationConfig
from study.data import mix
from study.measure.metrics import mixture_si_sdr, si_sdr
from study.runtime.device import autocast
from study.trial.train import step_generator

# A small ConvTasNet for CPU budgets (the paper's is 5.1 M parameters; this is 0.35 M)
ARCHITECTURE = dict(enc_kernel_size=16, enc_num_feats=128, msk_kernel_size=3, msk_num_feats=64,
                    msk_num_hidden_feats=128, msk_num_layers=6, msk_num_stacks=2)
BATCH, CROP, GRAD_CLIP = 8, 1024, 5.0


def train_separator(data, sep: SeparationConfig, device: torch.device, log: Callable[[str], None]) -> ConvTasNet:
    """ConvTasNet trained for ``sep.reference_steps`` steps on mixtures of random training crops."""
    torch.manual_seed(sep.seed)
    model = ConvTasNet(num_sources=len(data.sources), **ARCHITECTURE).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=sep.reference_lr)
    for step in range(sep.reference_steps):
        sources = data.training_batch(step_generator(sep.seed, step, 2), BATCH).to(device)
        with autocast(device):
            estimates = model(mix(sources).unsqueeze(1)).float()
        loss = -si_sdr(estimates, sources).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        if (step + 1) % max(1, sep.reference_steps // 10) == 0:
            log(f"supervised reference (ConvTasNet) step {step + 1}/{sep.reference_steps}: SI-SDR {-loss.item():.2f} dB")
    return model.eval()


@torch.inference_mode()
def reference_metrics(model: ConvTasNet, references: torch.Tensor, device: torch.device) -> dict[str, float]:
    """SI-SDR and SI-SDRi (dB) of the supervised separator on the test mixtures of ``references`` [B, K, T]."""
    mixtures = mix(references)
    estimates = model(mixtures.unsqueeze(1).to(device)).float().cpu()
    score = si_sdr(estimates, references).mean().item()
    return {"si_sdr_supervised": score, "si_sdri_supervised": score - mixture_si_sdr(mixtures, references).mean().item()}
