"""The channels-last layout (models.layers.set_layout) is only a faster way to compute the same densities:
every family gives the same log p in either layout, the flow stays exactly invertible, the WaveNet causal."""
import pytest
import torch

from models import build_prior
from models.layers import channels_last, set_layout

from .test_flowavenet import randomised


@pytest.fixture
def layout(request):
    set_layout(request.param)
    yield request.param
    set_layout("auto")


def random_prior(name):
    torch.manual_seed(0)
    prior = build_prior(name, preset="tiny", num_sources=2).eval()
    with torch.no_grad():  # away from the zero-initialised output layers, so the network matters
        for p in prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return prior


@pytest.mark.parametrize("name", ["wavenet", "wavenet_nc", "flowavenet_nc", "scorenet"])
def test_log_p_is_the_same_in_either_layout_and_with_autograd(name):
    prior = random_prior(name)
    x = (torch.rand(3, 2, 512) * 2 - 1) * 0.8
    sigma = 0.1 if prior.noise_conditional else None
    results = {}
    for chosen in ("channels_first", "channels_last"):
        set_layout(chosen)
        with torch.no_grad():  # the gate's in-place sigmoid form
            results[chosen] = prior.log_prob(x, sigma)
    set_layout("auto")
    with torch.enable_grad():  # channels-first, the gate's tanh form
        results["autograd"] = prior.log_prob(x, sigma)
    scale = results["autograd"].abs().max()
    for chosen in ("channels_first", "channels_last"):
        assert (results[chosen] - results["autograd"]).abs().max() < 1e-6 * scale
    assert not torch.equal(results["autograd"], prior.log_prob(x.flip(-1), sigma))  # the input matters


@pytest.mark.parametrize("layout", ["channels_last"], indirect=True)
def test_flow_is_exactly_invertible_in_channels_last(layout):
    torch.manual_seed(0)
    flow = randomised(build_prior("flowavenet", blocks=3, flows=2, layers=2, width=4, num_sources=2).double())
    x = torch.randn(3, 2, 64, dtype=torch.float64)
    with torch.no_grad():
        latents, _, _ = flow.encode(x)
        assert torch.allclose(flow.inverse(latents), x, atol=1e-10)


@pytest.mark.parametrize("layout", ["channels_last"], indirect=True)
def test_wavenet_is_causal_in_channels_last(layout):
    torch.manual_seed(0)
    prior = build_prior("wavenet", stacks=2, layers=4, width=8, num_sources=2).eval()
    x = torch.rand(2, 2, 100) * 2 - 1
    y = x.clone()
    y[:, :, 57] = -x[:, :, 57] + 0.3
    with torch.no_grad():
        params_x, params_y = prior.predict(x), prior.predict(y)
    assert torch.equal(params_x[..., :58], params_y[..., :58])
    assert not torch.allclose(params_x[..., 58], params_y[..., 58])


def test_auto_is_channels_last_only_on_cpu_without_a_graph():
    x = torch.zeros(1, 1, 8)
    assert not channels_last(x)
    with torch.no_grad():
        assert channels_last(x)
    with torch.inference_mode():
        assert channels_last(x)
    with pytest.raises(ValueError, match="layout must be one of"):
        set_layout("nhwc")
