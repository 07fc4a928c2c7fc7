"""The CUDA paths (``pytest -m cuda``, run by ``benchmarks/gpu_check.sh`` the day a GPU is there; skipped
without one): the priors' exactness under AMP on the GPU, the GPU's log p against the CPU's, and a tiny
trial that trains, evaluates and separates on the GPU in the precision it announces."""
import pytest
import torch

from models import build_prior
from study.runtime.precision import resolve_precision
from study.runtime.device import autocast

from .test_flowavenet import randomised

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available())")]
GPU = torch.device("cuda")


def test_flow_is_invertible_and_agrees_with_the_cpu_under_amp():
    torch.manual_seed(0)
    prior = randomised(build_prior("flowavenet", blocks=3, flows=2, layers=2, width=8, num_sources=2))
    x = torch.randn(3, 2, 256)
    expected = prior.log_prob(x)
    gpu = prior.to(GPU)
    with autocast(GPU, "bfloat16"):
        latents, _, _ = gpu.encode(x.to(GPU))
        back = gpu.inverse(latents)
        log_p = gpu.log_prob(x.to(GPU))
    assert (back.float().cpu() - x).abs().max() < 1e-4
    assert log_p.dtype == torch.float32
    assert torch.allclose(log_p.cpu(), expected, rtol=0.05, atol=0.05 * expected.abs().mean().item())


def test_a_tiny_trial_runs_on_the_gpu_in_the_precision_it_says(tmp_path):
    from tests.trial.test_trial import tiny
    from study.trial.run import run_trial

    lines = []
    cfg = tiny(training={"steps": 30}, schedule={"kind": "scratch", "sigma": 0.0},
               evaluation={"clips": 8, "noise_levels": [0.01]}, separation={"mixtures": 1, "steps_per_level": 3})
    final = run_trial(cfg.model_copy(update={"device": "cuda"}), tmp_path, log=lines.append)
    used = resolve_precision("auto", GPU).used
    assert any(line.startswith(f"precision {used}") for line in lines), lines[:20]
    assert final["compute_gpu_seconds"] > 0 and final["separation_diverged"] == 0.0
