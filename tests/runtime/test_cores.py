"""Work split over the CPU cores gives what one pass gives, under the caller's grad mode and autocast."""
import copy
import threading

import pytest
import torch

from models import build_prior
from study.config.schema import NoiseConfig, TrainingConfig
from study.runtime.cores import batch_parts, map_batch, on_cores, use_cores
from study.trial.evaluate import log_likelihoods
from study.trial.train import loss_and_gradients


@pytest.fixture
def two_cores():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    use_cores(True)
    torch.set_num_threads(before)


def test_pieces_run_on_single_threaded_workers_in_order_under_the_callers_modes(two_cores):
    def look(piece):
        return (piece, threading.current_thread().name, torch.get_num_threads(), torch.is_inference_mode_enabled(),
                torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        seen = on_cores(look, list(range(6)), torch.device("cpu"))
    assert [s[0] for s in seen] == list(range(6))
    assert all(name.startswith("core") for _, name, *_ in seen)  # not the caller's thread
    assert {s[2:] for s in seen} == {(1, True, False, True, torch.bfloat16)}
    with torch.enable_grad():
        assert {s[4:6] for s in on_cores(look, [0, 1], torch.device("cpu"))} == {(True, False)}
    assert torch.get_num_threads() == 2  # the caller keeps its threads

    use_cores(False)
    assert {s[1] for s in on_cores(look, [0, 1], torch.device("cpu"))} == {threading.current_thread().name}


def test_batch_parts_cover_the_batch_once(two_cores):
    assert batch_parts(5, torch.device("cpu")) == [slice(0, 2), slice(2, 5)]
    assert batch_parts(1, torch.device("cpu")) == [slice(0, 1)]
    use_cores(False)
    assert batch_parts(5, torch.device("cpu")) == [slice(0, 5)]


def step(prior, x, sigma, config, enabled):
    use_cores(enabled)
    loss, per_source = loss_and_gradients(prior, x, sigma, config)
    return loss, per_source, {n: p.grad.clone() for n, p in prior.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name,config", [
    ("flowavenet", TrainingConfig(batch_size=4, crop=256)),
    ("wavenet_nc", TrainingConfig(batch_size=5, crop=256, noise=NoiseConfig(weighting="sigma_squared"))),
    ("wavenet", TrainingConfig(batch_size=4, crop=256, hybrid_lambda=0.5)),
])
def test_split_training_step_gives_the_whole_batchs_loss_and_gradients(two_cores, name, config):
    torch.manual_seed(0)
    prior = build_prior(name, preset="tiny", num_sources=2).train()
    x = torch.randn(config.batch_size, 2, config.crop) * 0.3
    sigma = torch.rand(config.batch_size, 2) * 0.5 + 0.05 if prior.noise_conditional else None
    split, whole = prior, copy.deepcopy(prior)
    for _ in range(2):  # the flow's first step initialises ActNorm on the whole batch, its second is split
        a, b = step(split, x, sigma, config, True), step(whole, x, sigma, config, False)
        torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-6)
        assert a[2].keys() == b[2].keys() and a[2]
        for key in a[2]:
            torch.testing.assert_close(a[2][key], b[2][key], rtol=1e-4, atol=1e-6, msg=key)
        torch.testing.assert_close(dict(split.state_dict()), dict(whole.state_dict()))
        for p in list(split.parameters()) + list(whole.parameters()):  # the same update on both copies
            if p.grad is not None:
                p.data.add_(p.grad, alpha=-1e-3)


def test_evaluation_and_scores_are_the_same_with_and_without_the_split(two_cores):
    torch.manual_seed(0)
    prior = build_prior("flowavenet", preset="tiny", num_sources=2).eval()
    clips = torch.randn(7, 2, 256) * 0.3
    use_cores(False)
    whole = log_likelihoods(prior, clips, 2, torch.device("cpu"))
    score = prior.score(clips)
    use_cores(True)
    torch.testing.assert_close(log_likelihoods(prior, clips, 2, torch.device("cpu")), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(map_batch(prior.score, clips), score, rtol=1e-5, atol=1e-6)
