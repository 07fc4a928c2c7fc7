"""Under bf16 autocast (study.runtime.device.autocast, precision "bfloat16") only the networks' convolutions run in
bf16. The priors stay exact in the sense that matters: a flow is still exactly invertible and its log-det is
the log-det of the map it computes, a WaveNet is still causal, and every density is still normalised, because
what leaves a network (coupling scales and shifts, density parameters) is used in float32. Only the network's
outputs differ from float32, so log p moves a little; the last test bounds how much."""
import torch

from models import build_prior
from study.runtime.device import autocast

from .test_flowavenet import randomised

CPU = torch.device("cpu")


def bf16():
    return autocast(CPU, "bfloat16")


def tiny_flow():
    torch.manual_seed(0)
    return randomised(build_prior("flowavenet", blocks=3, flows=2, layers=2, width=4, num_sources=2))


def test_autocast_is_really_on_and_the_density_leaves_it_in_float32():
    prior = tiny_flow()
    seen = {}
    conv = prior.blocks[0][0][1].net.front
    conv.register_forward_hook(lambda m, i, o: seen.update(dtype=o.dtype))
    with bf16():
        log_p = prior.log_prob(torch.randn(2, 2, 64))
    assert seen["dtype"] == torch.bfloat16 and log_p.dtype == torch.float32


def test_flow_is_exactly_invertible_under_bf16():
    prior = tiny_flow()
    x = torch.randn(3, 2, 64)
    with bf16():
        latents, _, _ = prior.encode(x)
        back = prior.inverse(latents)
    assert torch.allclose(back, x, atol=1e-5)  # float32 round trip (it is 1e-10 in float64 without autocast)


def test_flow_logdet_is_the_jacobian_of_the_map_it_computes_under_bf16():
    prior = tiny_flow()
    x = torch.randn(1, 2, 16)

    def flat_latents(v):
        with bf16():
            latents, _, _ = prior.encode(v.view(1, 2, 16))
        return torch.cat([z[0, k].reshape(-1) for k in range(2) for z in latents])

    jac = torch.autograd.functional.jacobian(flat_latents, x.reshape(-1)).double()
    with bf16():
        _, logdet, _ = prior.encode(x)
    for k in range(2):
        block = jac[16 * k:16 * (k + 1), 16 * k:16 * (k + 1)]
        # bf16 rounding of the coupling networks' gradients enters the Jacobian's off-diagonal terms only
        assert torch.allclose(torch.linalg.slogdet(block).logabsdet, logdet[0, k].double(), atol=1e-4)


def test_wavenet_is_causal_and_normalised_under_bf16():
    torch.manual_seed(0)
    prior = build_prior("wavenet", stacks=2, layers=4, width=8, num_sources=2).eval()
    x = torch.rand(2, 2, 100) * 2 - 1
    y = x.clone()
    y[:, :, 57] = -x[:, :, 57] + 0.3
    with bf16():
        lp_x, lp_y = prior.log_prob_per_position(x), prior.log_prob_per_position(y)
        params = prior.predict(x)[..., -1:]
    assert torch.equal(lp_x[..., :57], lp_y[..., :57])
    assert params.dtype == torch.float32
    grid = torch.linspace(-60.0, 60.0, 400_001, dtype=torch.float64)
    log_density = prior._logistic_log_density(params[:1, :1].double().expand(-1, -1, -1, grid.numel()),
                                              grid.view(1, 1, -1))
    assert abs(torch.trapezoid(log_density.exp().squeeze(), grid).item() - 1.0) < 1e-3


def test_bf16_moves_log_p_by_little():
    """Same weights, same clips: nats per sample under bf16 within 0.01 of float32 for both families."""
    torch.manual_seed(0)
    clips = (torch.rand(2, 4, 2048) * 2 - 1) * 0.8
    for prior in (build_prior("wavenet", preset="tiny", num_sources=4).eval(), tiny_flow().eval()):
        clips_k = clips[:, :prior.num_sources]
        with torch.no_grad():
            exact = prior.log_prob_per_sample(clips_k)
            with bf16():
                rounded = prior.log_prob_per_sample(clips_k)
        assert (rounded - exact).abs().max() < 1e-2, (rounded - exact)
