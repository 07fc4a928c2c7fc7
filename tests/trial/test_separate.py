"""The Langevin sampler against Gaussian priors whose posterior is known in closed form."""
import torch

from study.trial.separate import LangevinSchedule, annealed_langevin

# Per source a zero-mean Gaussian prior with its own variance c_k; mixture m = Σ α_k s_k (+ N(0, γ²)).
VARIANCES = torch.tensor([0.5, 0.1, 0.02], dtype=torch.float64)
ALPHAS = torch.full((3,), 1 / 3, dtype=torch.float64)


def gaussian_score(level, s):
    return -s / VARIANCES.view(1, -1, 1)


def chain_mean(schedule, mixture, burn_in_steps, total_steps, seed=0, start=None):
    """Average over 256 independent chains per mixture sample and over the iterates after burn-in."""
    g = torch.Generator().manual_seed(seed)
    mixture = mixture.expand(256, -1)
    start = None if start is None else start.expand(256, -1, -1)
    sum_, count = torch.zeros(1, 3, mixture.shape[-1], dtype=torch.float64), 0
    state = {"step": 0}

    def score(level, s):
        nonlocal sum_, count
        state["step"] += 1
        if state["step"] > burn_in_steps:
            sum_ = sum_ + s.mean(0, keepdim=True)
            count += 1
        return gaussian_score(level, s)

    annealed_langevin(score, mixture, ALPHAS, schedule, g, start=start)
    return sum_ / count


def test_gaussian_likelihood_matches_analytic_posterior_mean():
    sigma = 0.1
    schedule = LangevinSchedule(sigmas=[sigma], steps_per_level=3000, epsilon=2e-3, init="noise")
    gamma2 = schedule.gamma_squared(0, ALPHAS)
    mixture = torch.linspace(-0.6, 0.6, 16, dtype=torch.float64).view(1, -1)
    # posterior precision P = diag(1/c) + α αᵀ/γ², mean = P⁻¹ α m / γ²
    precision = torch.diag(1 / VARIANCES) + torch.outer(ALPHAS, ALPHAS) / gamma2
    expected = torch.linalg.solve(precision, ALPHAS.view(-1, 1) / gamma2) * mixture  # [3, T]
    got = chain_mean(schedule, mixture, 500, 3000)[0]
    # Monte-Carlo error (256 chains × 2 500 steps, step 2e-3) is ≈0.005; the discretisation bias is smaller.
    assert (got - expected).abs().max() < 0.03, (got - expected).abs().max()
    assert (got - expected).abs().mean() < 0.01


def test_dirac_rule_matches_constrained_posterior_mean_and_holds_the_mixture():
    schedule = LangevinSchedule(sigmas=[0.1], steps_per_level=3000, epsilon=2e-3, init="mixture", rule="dirac")
    mixture = torch.linspace(-0.5, 0.5, 16, dtype=torch.float64).view(1, -1)
    # Gaussian conditioned on Σ α s = m: mean = C α (αᵀ C α)⁻¹ m
    c_alpha = VARIANCES * ALPHAS
    expected = (c_alpha / (ALPHAS @ c_alpha)).view(-1, 1) * mixture
    got = chain_mean(schedule, mixture, 500, 3000)[0]
    assert (got - expected).abs().max() < 0.03
    result = annealed_langevin(gaussian_score, mixture, ALPHAS, LangevinSchedule([0.1], 50, 2e-3, rule="dirac"),
                               torch.Generator().manual_seed(1))
    assert torch.allclose((ALPHAS.view(1, -1, 1) * result.estimates).sum(1), mixture, atol=1e-9)


def test_annealing_schedule_and_divergence_is_reported():
    schedule = LangevinSchedule(sigmas=[1.0, 0.1, 0.01], steps_per_level=3, epsilon=1e-4)
    assert abs(schedule.step_size(0) - 1.0) < 1e-12 and abs(schedule.step_size(2) - 1e-4) < 1e-15
    mixture = torch.zeros(2, 16, dtype=torch.float64)
    blow_up = lambda level, s: s * 1e6  # noqa: E731  (an exploding "score")
    result = annealed_langevin(blow_up, mixture + 0.1, ALPHAS, schedule, torch.Generator().manual_seed(0))
    assert result.diverged and "left [-30, 30]" in result.diverged and "σ=1" in result.diverged
    gentle = LangevinSchedule(sigmas=[1.0, 0.1, 0.01], steps_per_level=3, epsilon=1e-6)
    ok = annealed_langevin(gaussian_score, mixture, ALPHAS, gentle, torch.Generator().manual_seed(0),
                           keep_levels=True)
    assert ok.diverged is None and ok.steps == 9 and len(ok.level_estimates) == 3


def test_a_chain_started_at_the_true_sources_has_the_same_posterior_and_starts_there():
    """The oracle-start diagnosis: the start changes where the chain begins, not the posterior it samples
    (both rules against their closed forms), and with a step too small to move, it stays at the truth."""
    mixture = torch.linspace(-0.6, 0.6, 16, dtype=torch.float64).view(1, -1)
    truth = torch.stack([torch.linspace(1, -1, 16), torch.linspace(-0.2, 0.4, 16), torch.zeros(16)]).double()
    truth[2] = (mixture[0] - ALPHAS[0] * truth[0] - ALPHAS[1] * truth[1]) / ALPHAS[2]  # Σ α s = m exactly
    gaussian = LangevinSchedule(sigmas=[0.1], steps_per_level=3000, epsilon=2e-3)
    gamma2 = gaussian.gamma_squared(0, ALPHAS)
    precision = torch.diag(1 / VARIANCES) + torch.outer(ALPHAS, ALPHAS) / gamma2
    expected = torch.linalg.solve(precision, ALPHAS.view(-1, 1) / gamma2) * mixture
    got = chain_mean(gaussian, mixture, 500, 3000, start=truth.unsqueeze(0))[0]
    assert (got - expected).abs().max() < 0.03
    dirac = LangevinSchedule(sigmas=[0.1], steps_per_level=3000, epsilon=2e-3, rule="dirac")
    c_alpha = VARIANCES * ALPHAS
    expected = (c_alpha / (ALPHAS @ c_alpha)).view(-1, 1) * mixture
    assert (chain_mean(dirac, mixture, 500, 3000, start=truth.unsqueeze(0))[0] - expected).abs().max() < 0.03
    frozen = LangevinSchedule(sigmas=[0.1], steps_per_level=2, epsilon=1e-12)
    held = annealed_langevin(gaussian_score, mixture, ALPHAS, frozen, torch.Generator().manual_seed(0),
                             start=truth.unsqueeze(0))
    moved = annealed_langevin(gaussian_score, mixture, ALPHAS, frozen, torch.Generator().manual_seed(0))
    assert torch.allclose(held.estimates[0], truth, atol=1e-4)
    assert torch.allclose(moved.estimates[0], mixture.expand(3, -1), atol=1e-4)  # the default starts at m


def smoothed_gaussian_score(sigmas):
    """The exact score of each Gaussian prior smoothed at level i: N(0, c_k + σ_i²)."""
    return lambda level, s: -s / (VARIANCES.view(1, -1, 1) + sigmas[level] ** 2)


def test_predictor_corrector_with_more_steps_at_small_sigma_samples_the_last_levels_posterior():
    """Reverse-diffusion predictor between levels, steps growing tenfold to the last level, and noise projected
    onto the mixture as the start: the last level's chain still samples its closed-form posterior (both rules)."""
    sigmas = [0.3, 0.1]
    mixture = torch.linspace(-0.6, 0.6, 16, dtype=torch.float64).view(1, -1)
    last = VARIANCES + sigmas[-1] ** 2
    for rule in ("gaussian", "dirac"):
        schedule = LangevinSchedule(sigmas, steps_per_level=300, epsilon=2e-3, init="projected", rule=rule,
                                    predictor="reverse_diffusion", steps_growth=10)
        assert [schedule.steps(i) for i in range(2)] == [300, 3000]
        g = torch.Generator().manual_seed(0)
        chains = mixture.expand(256, -1)
        iterates = []
        score = smoothed_gaussian_score(sigmas)

        def recording(level, s):
            iterates.append(s.mean(0, keepdim=True).clone())
            return score(level, s)

        annealed_langevin(recording, chains, ALPHAS, schedule, g)
        assert len(iterates) == 300 + 1 + 3000  # corrector steps, one predictor step, corrector steps
        got = torch.cat(iterates[300 + 1 + 500:]).mean(0)
        if rule == "gaussian":
            gamma2 = schedule.gamma_squared(1, ALPHAS)
            precision = torch.diag(1 / last) + torch.outer(ALPHAS, ALPHAS) / gamma2
            expected = torch.linalg.solve(precision, ALPHAS.view(-1, 1) / gamma2) * mixture
        else:
            c_alpha = last * ALPHAS
            expected = (c_alpha / (ALPHAS @ c_alpha)).view(-1, 1) * mixture
        assert (got - expected).abs().max() < 0.03, (rule, (got - expected).abs().max())


def test_projected_noise_start_sums_to_the_mixture_and_steps_grow_geometrically():
    mixture = torch.randn(2, 32, dtype=torch.float64)
    frozen = LangevinSchedule([1.0], steps_per_level=1, epsilon=1e-14, init="projected")
    start = annealed_langevin(gaussian_score, mixture, ALPHAS, frozen, torch.Generator().manual_seed(0)).estimates
    assert torch.allclose((ALPHAS.view(1, -1, 1) * start).sum(1), mixture, atol=1e-5)
    assert start.std() > 0.5  # noise at the entry σ = 1, not the mixture copied
    schedule = LangevinSchedule([1.0, 0.1, 0.01], steps_per_level=10, steps_growth=10)
    assert [schedule.steps(i) for i in range(3)] == [10, 32, 100]


def smoothed_score_at_any_level(sigmas):
    """The exact score of each Gaussian prior smoothed at σ: N(0, c_k + σ²), at level i's σ or at ``sigma``
    (a number or one per source), as a σ-conditional prior answers."""
    def score(level, s, sigma=None):
        sigma = torch.as_tensor(sigmas[level] if sigma is None else sigma, dtype=s.dtype).reshape(1, -1, 1)
        return -s / (VARIANCES.view(1, -1, 1) + sigma**2)
    return score


def recorded_mean(schedule, score, mixture, burn_in, seed=0, chains=256):
    """Mean over chains and over the iterates after ``burn_in`` score calls: [3, T]."""
    iterates = []

    def recording(level, s, **kwargs):
        iterates.append(s.mean(0, keepdim=True).clone())
        return score(level, s, **kwargs)

    annealed_langevin(recording, mixture.expand(chains, -1), ALPHAS, schedule, torch.Generator().manual_seed(seed))
    return torch.cat(iterates[burn_in:]).mean(0)


def test_dirac_rule_scoring_the_pinned_source_at_its_matched_level_samples_that_posterior():
    """pinned_sigma: matched scores the pinned source at √(Σ_{j<K} α_j²)/α_K · σ: the chain then samples the
    Gaussian conditioned on Σ α s = m with the pinned prior smoothed at that level and the others at σ."""
    sigma = 0.3
    mixture = torch.linspace(-0.5, 0.5, 16, dtype=torch.float64).view(1, -1)
    schedule = LangevinSchedule([sigma], steps_per_level=3000, epsilon=2e-3, rule="dirac", pinned_sigma="matched")
    pinned = sigma * float(ALPHAS[:-1].pow(2).sum().sqrt() / ALPHAS[-1])
    smoothed = VARIANCES + torch.tensor([sigma, sigma, pinned], dtype=torch.float64) ** 2
    expected = (smoothed * ALPHAS / (ALPHAS @ (smoothed * ALPHAS))).view(-1, 1) * mixture
    got = recorded_mean(schedule, smoothed_score_at_any_level([sigma]), mixture, burn_in=500)
    assert (got - expected).abs().max() < 0.03, (got - expected).abs().max()
    level = LangevinSchedule([sigma], steps_per_level=3000, epsilon=2e-3, rule="dirac")  # the other answer
    assert (recorded_mean(level, smoothed_score_at_any_level([sigma]), mixture, 500) - expected).abs().max() > 0.05


def test_smoothed_map_rule_converges_to_the_smoothed_posterior_mode():
    """Mode seeking with the score of a noised copy at σ' (spread 1: σ' = σ): no injected noise, so every chain
    goes to the mode of the Gaussian posterior whose prior is smoothed at σ (in expectation over the copies)."""
    sigma = 0.2
    mixture = torch.linspace(-0.6, 0.6, 16, dtype=torch.float64).view(1, -1)
    schedule = LangevinSchedule([sigma], steps_per_level=3000, epsilon=2e-3, rule="smoothed_map", smoothing_spread=1)
    gamma2 = schedule.gamma_squared(0, ALPHAS)
    precision = torch.diag(1 / (VARIANCES + sigma**2)) + torch.outer(ALPHAS, ALPHAS) / gamma2
    expected = torch.linalg.solve(precision, ALPHAS.view(-1, 1) / gamma2) * mixture
    got = recorded_mean(schedule, smoothed_score_at_any_level([sigma]), mixture, burn_in=1000, chains=64)
    assert (got - expected).abs().max() < 0.02, (got - expected).abs().max()


def test_churn_and_a_noised_prior_start_leave_the_posterior_unchanged():
    """Churn re-noises before the corrector steps and the noised-prior start only moves where chains begin:
    the last level still samples its closed-form posterior (Gaussian likelihood)."""
    sigmas = [0.3, 0.1]
    mixture = torch.linspace(-0.6, 0.6, 16, dtype=torch.float64).view(1, -1)
    schedule = LangevinSchedule(sigmas, steps_per_level=2000, epsilon=2e-3, init="noised_prior", churn=1.0)
    gamma2 = schedule.gamma_squared(1, ALPHAS)
    precision = torch.diag(1 / (VARIANCES + sigmas[-1] ** 2)) + torch.outer(ALPHAS, ALPHAS) / gamma2
    expected = torch.linalg.solve(precision, ALPHAS.view(-1, 1) / gamma2) * mixture
    got = recorded_mean(schedule, smoothed_score_at_any_level(sigmas), mixture, burn_in=2000 + 500)
    assert (got - expected).abs().max() < 0.03, (got - expected).abs().max()
    frozen = LangevinSchedule([2.0], steps_per_level=1, epsilon=1e-14, init="noised_prior")
    wide = torch.randn(1, 4096, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    start = annealed_langevin(gaussian_score, wide, ALPHAS, frozen, torch.Generator().manual_seed(0)).estimates
    variance = wide.pow(2).mean() / ALPHAS.pow(2).sum()  # the sources' variance the mixture implies
    assert abs(start.var().item() - (4.0 + variance.item())) < 0.3  # N(0, σ_1² + v)


def test_denoiser_start_is_the_posterior_mean_for_equal_gaussian_priors():
    """For equal variances c, D_k(m/α_k, σ_k) with σ_k² = v·Σ_{j≠k}α_j²/α_k² is the MMSE estimate, and projected
    onto the constraint it is the posterior mean Cα(αᵀCα)⁻¹m = m (α = 1/3): exact in closed form."""
    mixture = torch.randn(3, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    c = 0.4

    def equal(level, s, sigma=None):
        level_ = torch.as_tensor(0.1 if sigma is None else sigma, dtype=s.dtype).reshape(1, -1, 1)
        return -s / (c + level_**2)

    frozen = LangevinSchedule([0.1], steps_per_level=1, epsilon=1e-14, init="denoiser")
    start = annealed_langevin(equal, mixture, ALPHAS, frozen, torch.Generator().manual_seed(0)).estimates
    assert torch.allclose(start, mixture.unsqueeze(1).expand(-1, 3, -1), atol=1e-5)  # one step of 1e-14


def test_karras_levels_run_from_the_entry_down_to_the_floor():
    from study.config.schema import SeparationConfig
    from study.trial.stages import Stage, karras_levels, separation_levels

    levels = karras_levels(3.0, 0.01, 40, 7.0)
    assert len(levels) == 40 and abs(levels[0] - 3.0) < 1e-12 and abs(levels[-1] - 0.01) < 1e-12
    assert all(a > b for a, b in zip(levels, levels[1:]))
    assert sum(level < 0.3 for level in levels) >= 20  # ρ = 7: half the levels below σ_max/10 (evenly: 4)
    stages = [Stage(0, 3.0, 10, None, ladder=(3.0, 1.0, 0.01), lowest_level=0.01)]
    entered = separation_levels(stages, SeparationConfig(levels="karras", karras_levels=5, start_sigma=1.0),
                                stages[-1].ladder)
    assert [i for _, i in entered] == [0] * 5 and abs(entered[0][0] - 1.0) < 1e-12


def test_the_samplers_options_are_declared_once():
    """The schema's option types are the sampler's, and every start has its name in words."""
    import typing

    from study.config.schema import INIT_NAMES, Init, SeparationConfig
    from study.trial.separate import LangevinSchedule

    assert set(INIT_NAMES) == set(typing.get_args(Init))
    hints = typing.get_type_hints(LangevinSchedule)
    for name in ("init", "rule", "predictor", "pinned_sigma"):
        assert hints[name] is SeparationConfig.model_fields[name].annotation, name


def test_gibbs_re_separation_samples_the_joint_posterior_from_a_wrong_start():
    """Each pair re-separated in turn with the others held (both rules): from every source but the first at
    zero, the chains end at the closed-form posterior, its mean and its covariance, and the Dirac rule holds
    the mixture throughout."""
    from study.trial.separate import LangevinResult, gibbs_resample

    mixture = torch.linspace(-0.6, 0.6, 16, dtype=torch.float64).view(1, -1).expand(256, -1)
    wrong = torch.zeros(256, 3, 16, dtype=torch.float64)
    wrong[:, 0] = mixture / ALPHAS[0]  # the whole mixture in the first source: it sums right, and is far off
    for rule in ("gaussian", "dirac"):
        schedule = LangevinSchedule([0.1], steps_per_level=400, epsilon=2e-3, rule=rule)
        start = LangevinResult(wrong.clone(), start=wrong.clone())
        result = gibbs_resample(gaussian_score, mixture, ALPHAS, schedule, torch.Generator().manual_seed(2),
                                start, sweeps=3)
        assert result.steps == 3 * 3 * 400 and result.moved > 0.3
        if rule == "gaussian":
            gamma2 = schedule.gamma_squared(0, ALPHAS)
            covariance = torch.linalg.inv(torch.diag(1 / VARIANCES) + torch.outer(ALPHAS, ALPHAS) / gamma2)
            mean = (covariance @ ALPHAS / gamma2).view(-1, 1) * mixture[0]
        else:
            c_alpha = VARIANCES * ALPHAS
            mean = (c_alpha / (ALPHAS @ c_alpha)).view(-1, 1) * mixture[0]
            covariance = torch.diag(VARIANCES) - torch.outer(c_alpha, c_alpha) / (ALPHAS @ c_alpha)
            assert torch.allclose((ALPHAS.view(1, -1, 1) * result.estimates).sum(1), mixture, atol=1e-9)
        deviations = (result.estimates - mean).transpose(0, 1).reshape(3, -1)  # [K, chains·T]
        assert (result.estimates.mean(0) - mean).abs().max() < 0.08, (rule, (result.estimates.mean(0) - mean).abs().max())
        got = deviations @ deviations.T / deviations.shape[1]
        assert (got - covariance).abs().max() < 0.1 * covariance.diagonal().max(), (rule, got, covariance)
