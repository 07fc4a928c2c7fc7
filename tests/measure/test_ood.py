"""The complexity-corrected score fixes a case where raw likelihood fails."""
import math

import numpy as np
import torch

from study.measure.metrics import per_source_auroc
from study.measure.ood import PCM_STEP, flac_bits, flac_log_density, likelihood_ratio


def test_flac_code_length_tracks_complexity():
    rng = np.random.default_rng(0)
    t = np.arange(4096)
    silence = np.zeros(4096)
    tone = 0.8 * np.sin(2 * np.pi * 220 * t / 14_700)
    noise = np.clip(0.3 * rng.standard_normal(4096), -1, 1)
    bits = [flac_bits(x, 14_700) for x in (silence, tone, noise)]
    assert bits[0] < bits[1] < bits[2]
    # white noise of std 0.3 at 16 bits costs about log2(0.3·√(2πe)/Δ) ≈ 15.4 bits per sample
    expected = math.log2(0.3 * math.sqrt(2 * math.pi * math.e) / PCM_STEP)
    assert abs(bits[2] / 4096 - expected) < 1.0
    density = flac_log_density(torch.tensor(np.stack([silence, noise]), dtype=torch.float32).view(2, 1, -1), 14_700)
    assert density.shape == (2, 1) and density[0, 0] > density[1, 0]


def test_corrected_score_fixes_the_silence_paradox():
    """A prior of source 0 whose raw likelihood prefers silent clips of source 1 over its own clips: the
    raw AUROC is below chance, the complexity-corrected one is not."""
    rng = np.random.default_rng(1)
    t = np.arange(2048)
    own = np.stack([0.5 * np.sin(2 * np.pi * f * t / 14_700) + 0.05 * rng.standard_normal(2048)
                    for f in rng.uniform(100, 400, 20)])
    silent = 1e-4 * rng.standard_normal((20, 2048))  # the other source: near silence
    clips = torch.tensor(np.stack([own, silent], axis=1), dtype=torch.float32)  # [N, K=2, T]
    compressor = flac_log_density(clips, 14_700)
    # prior 0: a Gaussian that fits its own clips loosely (std 0.4); every sample of silence is near its mode
    log_gauss = lambda x, s: (-0.5 * (x / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).mean(-1)  # noqa
    loglik = torch.stack([log_gauss(clips, 0.4), log_gauss(clips, 0.001)], dim=1)  # [N, prior, source]
    raw = per_source_auroc(loglik)
    corrected = per_source_auroc(likelihood_ratio(loglik, compressor))
    assert raw[0] < 0.1  # the paradox: silence outscores the prior's own clips
    assert corrected[0] > 0.9


def test_background_ratio_fixes_the_paradox_and_pooling_mixes_sources():
    """Every prior and the background love near-silent clips; the ratio to the background removes that."""
    from study.measure.ood import PooledSources

    rng = np.random.default_rng(2)
    own = 0.4 * rng.standard_normal((30, 512))
    silent = 1e-3 * rng.standard_normal((30, 512))
    clips = torch.tensor(np.stack([own, silent], axis=1), dtype=torch.float32)
    log_gauss = lambda x, s: (-0.5 * (x / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).mean(-1)  # noqa
    # prior 0 fits its own clips (std 0.4) and, peaking at 0, likes silence even more; prior 1 is broad.
    loglik = torch.stack([log_gauss(clips, 0.4), log_gauss(clips, 0.5)], dim=1)
    # the background, trained on both sources pooled, is a clip-level mixture of the two
    t = clips.shape[-1]
    per_clip = torch.stack([t * log_gauss(clips, 0.4), t * log_gauss(clips, 1e-3)])
    background = (torch.logsumexp(per_clip, 0) - math.log(2)) / t  # [N, K]
    assert per_source_auroc(loglik)[0] < 0.1
    assert per_source_auroc(likelihood_ratio(loglik, background))[0] > 0.9

    class Two:
        def training_batch(self, generator, batch_size):
            return torch.stack([torch.zeros(batch_size, 8), torch.ones(batch_size, 8)], dim=1)

    batch = PooledSources(Two()).training_batch(torch.Generator().manual_seed(0), 64)
    assert batch.shape == (64, 1, 8) and 10 < batch[:, 0, 0].sum() < 54  # both sources drawn
