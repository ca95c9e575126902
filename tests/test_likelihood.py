"""Exact log-likelihoods by the probability-flow ODE against the mixture's closed form."""
import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

import sdescore
from sdescore.datasets import random_mixture
from sdescore.solvers import likelihood
from sdescore.solvers.likelihood import (draw_probes, exact_divergence, hutchinson_divergence,
                                         row_probes)
from sdescore.solvers.adapters import ProbabilityFlowODE

from conftest import make_sde


@pytest.mark.parametrize("dim", [2, 3])
def test_log_prob_matches_analytic_mixture_density_with_exact_trace(sde, dim):
    """Default settings, float32: mean |log p_eps - log p_0| <= 0.01 nats per point. The
    mixture's mean is 0, so the prior mismatch at T (the floor) is far below that."""
    mixture = random_mixture(dim, seed=dim)
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
    x = mixture.sample(200, seed=5)
    estimate = model.log_prob(x.float(), trace="exact")
    assert estimate.dtype == torch.float32 and estimate.shape == (200,)
    error = (estimate.double() - mixture.log_prob(x)).abs()
    assert error.mean() <= 0.01, f"mean |error| {error.mean():.4f} nats"
    assert model.last_score_evals > 0


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_log_snr_integrator_converges_to_the_analytic_density(name):
    """method="dpm" on a 2-D mixture in float64: 80 steps are within 2e-3 nats of the closed
    form, and doubling the steps from 40 to 80 cuts the error by more than 4 (measured
    6-9x: the state moves at third order, the divergence's integral at fourth). VE with
    sigma_max = 50, whose prior matches p_T to far below these errors."""
    sde = sdescore.get_sde("ve", sigma_max=50.0) if name == "ve" else make_sde(name)
    mixture = random_mixture(2, seed=2)
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (2,)).double()
    x = mixture.sample(200, seed=5)
    errors = []
    for steps in (40, 80):
        errors.append((model.log_prob(x, method="dpm", steps=steps) - mixture.log_prob(x))
                      .abs().mean().item())
        assert model.last_score_evals == steps + 1
    assert errors[1] < 2e-3 and errors[0] / errors[1] > 4, f"errors at 40, 80 steps: {errors}"


@pytest.mark.parametrize("name, dim, bound", [("subvp", 2, 0.01), ("subvp", 6, 0.01),
                                              ("subvp", 16, 0.01), ("ve", 2, 0.005),
                                              ("ve", 6, 0.005), ("ve", 16, 0.01)])
def test_the_dpm_preset_is_within_a_hundredth_of_a_nat(name, dim, bound):
    """log_prob(method="dpm") at its default 60 steps, float32, on the benchmark's points
    (benchmarks/log_prob_levers.py): mean |error| <= bound nats (sub-VP measured 0.0008,
    0.0026 and 0.0080; VE, sigma_max = 50, on its grid even in t 0.0004, 0.0020 and 0.0067,
    where the sqrt(t) grid of VP and sub-VP gave 0.0010, 0.0088 and 0.0318), with steps + 1
    evaluations."""
    mixture = random_mixture(dim, 3, seed=dim)
    sde = sdescore.get_sde("ve", sigma_max=50.0) if name == "ve" else make_sde(name)
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
    x = mixture.sample(500, seed=1)
    error = (model.log_prob(x.float(), method="dpm").double() - mixture.log_prob(x)).abs()
    assert error.mean() <= bound, f"mean |error| {error.mean():.4f} nats"
    assert model.last_score_evals == 61


def test_tight_float64_solve_reaches_the_prior_mismatch_floor(mixture2d, double_model):
    """rtol = atol = 1e-8 in float64: the remaining error is the density gap between p_eps,
    p_0 and the prior (below 1e-3 nats here), so the solver itself adds nothing visible."""
    sde = make_sde("vp")
    model = double_model(mixture2d, sde)
    x = mixture2d.sample(50, seed=2)
    estimate = model.log_prob(x, trace="exact", rtol=1e-8, atol=1e-8)
    assert (estimate - mixture2d.log_prob(x)).abs().max() < 1e-3


@pytest.mark.parametrize("pullback_rows", [likelihood.EXACT_TRACE_ROWS, 12])
def test_exact_divergence_is_the_trace_of_the_autograd_jacobian(pullback_rows, monkeypatch):
    """Whole or in chunks of basis vectors (12 rows: two of the four per chunk)."""
    monkeypatch.setattr(likelihood, "EXACT_TRACE_ROWS", pullback_rows)
    torch.manual_seed(0)
    weight = torch.randn(4, 4, dtype=torch.float64)
    fn = lambda y: torch.tanh(y @ weight) * y  # noqa: E731  (row-wise, nonlinear)
    y = torch.randn(6, 4, dtype=torch.float64)
    out, div = exact_divergence(fn, y)
    torch.testing.assert_close(out, fn(y))
    for i in range(6):
        jac = torch.autograd.functional.jacobian(fn, y[i : i + 1]).reshape(4, 4)
        torch.testing.assert_close(div[i], torch.trace(jac))


@pytest.mark.parametrize("field", ["constant", "learned constant"])
def test_a_field_constant_in_x_has_zero_divergence(field):
    """A field that does not depend on x (a tensor without gradient, or a parameter that
    autograd tracks but x does not reach) has divergence 0, exact and by Hutchinson."""
    offset = torch.randn(4, dtype=torch.float64, requires_grad=field == "learned constant")
    fn = lambda y: offset.expand(y.shape[0], 4) * 1.0  # noqa: E731
    y = torch.randn(6, 4, dtype=torch.float64)
    with torch.no_grad():
        out, div = exact_divergence(fn, y)
        _, estimate = hutchinson_divergence(fn, y, draw_probes("gaussian", 3, y))
    torch.testing.assert_close(out, fn(y).detach())
    assert (div == 0).all() and (estimate == 0).all()


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_row_probes_are_a_rows_own_and_have_the_probes_law(kind):
    """A row's probes depend on the seed and its values only (not its batch or position);
    across rows, probes and columns they are independent draws of their law: mean 0,
    variance 1, and for Gaussian probes the normal's tails (5% beyond 1.96) and fourth
    moment 3. Rows one ulp apart share nothing."""
    rows = torch.randn(4000, 16, generator=torch.Generator().manual_seed(0))
    probes = row_probes(kind, 2, rows, seed=11)
    assert probes.shape == (2, 4000, 16) and probes.dtype == rows.dtype
    order = torch.randperm(4000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(row_probes(kind, 2, rows[order], seed=11), probes[:, order])
    assert torch.equal(row_probes(kind, 2, rows[5:6], seed=11), probes[:, 5:6])
    values = probes.double().flatten()
    count = values.numel()
    assert abs(values.mean()) < 4 / math.sqrt(count)
    assert abs(values.var() - 1) < 4 * math.sqrt(2 / count)
    if kind == "rademacher":
        assert set(values.unique().tolist()) == {-1.0, 1.0}
    else:
        tail = (values.abs() > 1.96).double().mean()
        assert abs(tail - 0.05) < 4 * math.sqrt(0.05 * 0.95 / count)
        assert abs(values.pow(4).mean() - 3) < 4 * math.sqrt(96 / count)
    flat = probes.double().permute(1, 0, 2).reshape(4000, 32)  # every column of every probe
    correlation = torch.corrcoef(flat.T) - torch.eye(32, dtype=torch.float64)
    assert correlation.abs().max() < 5 / math.sqrt(4000)
    nudged = torch.nextafter(rows, torch.full_like(rows, math.inf))
    for other in (row_probes(kind, 2, nudged, seed=11), row_probes(kind, 2, rows, seed=12)):
        pair = torch.stack([values, other.double().flatten()])
        assert abs(torch.corrcoef(pair)[0, 1]) < 4 / math.sqrt(count)


def test_row_streams_read_anywhere_are_uniform_and_purposes_are_independent():
    """Numbers start..start+count-1 of a row's stream are that slice of a longer read (so a
    caller reads unit k's numbers without drawing the ones before); as U(0, 1) they lie
    strictly inside (0, 1) with mean 1/2 and variance 1/12; another purpose's stream of the
    same rows is uncorrelated with the first."""
    from sdescore._row_streams import RowStreams

    rows = torch.randn(3000, 4, generator=torch.Generator().manual_seed(2))
    streams = RowStreams(rows, 5, b"first")
    whole = streams.uniform(0, 12)
    torch.testing.assert_close(streams.uniform(7, 5), whole[:, 7:], rtol=0, atol=0)
    values = whole.flatten()
    count = values.numel()
    assert whole.dtype == torch.float64 and (values > 0).all() and (values < 1).all()
    assert abs(values.mean() - 0.5) < 4 * math.sqrt(1 / 12 / count)
    assert abs(values.var() - 1 / 12) < 4 * math.sqrt(1 / 180 / count)
    other = RowStreams(rows, 5, b"second").uniform(0, 12).flatten()
    assert abs(torch.corrcoef(torch.stack([values, other]))[0, 1]) < 4 / math.sqrt(count)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_mean_converges_to_the_exact_trace(kind):
    torch.manual_seed(1)
    weight = torch.randn(5, 5, dtype=torch.float64)
    fn = lambda y: torch.sin(y @ weight)  # noqa: E731
    y = torch.randn(3, 5, dtype=torch.float64)
    _, exact = exact_divergence(fn, y)
    probes = draw_probes(kind, 20000, y, torch.Generator().manual_seed(2))
    single = torch.stack([hutchinson_divergence(fn, y, p[None])[1] for p in probes[:200]])
    _, mean = hutchinson_divergence(fn, y, probes)
    sem = single.std(0) / math.sqrt(probes.shape[0])
    assert ((mean - exact).abs() < 4 * sem).all()


def test_hutchinson_log_prob_is_unbiased_in_16d():
    """One Rademacher probe per solve: per-point noise of order a nat, but the mean error
    over points is within 3 standard errors of zero."""
    mixture = random_mixture(16, seed=7)
    sde = make_sde("subvp")
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (16,))
    x = mixture.sample(300, seed=8)
    error = model.log_prob(x, trace="hutchinson", seed=0).double() - mixture.log_prob(x)
    sem = error.std() / math.sqrt(error.numel())
    assert error.std() > 0.05  # it really is a noisy estimate...
    assert error.mean().abs() < 3 * sem  # ...that is right on average
    again = model.log_prob(x, trace="hutchinson", seed=0).double() - mixture.log_prob(x)
    torch.testing.assert_close(error, again)  # a seed fixes the probes


def _recording(score_fn, seen):
    def score(x, t):
        seen.append((t.min().item(), t.max().item()))
        return score_fn(x, t)
    return score


def test_raw_adaptive_solve_asks_for_times_past_T(mixture2d):
    """The trap: left alone, dopri5 evaluates the drift beyond T = 1 and interpolates back."""
    sde = make_sde("vp")
    seen = []
    flow = ProbabilityFlowODE(sde, _recording(mixture2d.score_fn(sde), seen), (2,))
    x = mixture2d.sample(64, seed=3)
    odeint(flow, x, torch.tensor([1e-5, 1.0], dtype=torch.float64), rtol=1e-5, atol=1e-5)
    assert max(hi for _, hi in seen) > 1.0


@pytest.mark.parametrize("call", [
    lambda m, x: m.log_prob(x),
    lambda m, x: m.log_prob(x, trace="hutchinson", solver="bosh3"),
    lambda m, x: m.log_prob(x, solver="rk4", steps=20),
    lambda m, x: m.sample(64, "ode"),
    lambda m, x: m.sample(64, "sde", steps=50),
    lambda m, x: m.sample(64, "pc", steps=50),
    lambda m, x: m.sample(64, "langevin", noise_levels=10, steps_per_level=2),
    lambda m, x: m.log_prob(x, method="dpm", steps=10),
    lambda m, x: m.sample(64, "dpm", steps=10),
], ids=["log_prob", "hutchinson-bosh3", "rk4", "ode", "sde", "pc", "langevin", "log_prob-dpm",
        "dpm"])
def test_score_is_never_asked_for_a_time_outside_0_T(mixture2d, sde, call):
    seen = []
    model = sdescore.ScoreModel(sde, _recording(mixture2d.score_fn(sde), seen), (2,))
    call(model, mixture2d.sample(64, seed=4).float())
    assert seen, "the score was never called"
    low, high = min(lo for lo, _ in seen), max(hi for _, hi in seen)
    assert 0.0 <= low and high <= sde.T, f"score asked at t in [{low}, {high}]"


def test_log_prob_in_batches_equals_one_solve_per_batch(mixture2d):
    sde = make_sde("vp")
    model = sdescore.ScoreModel(sde, mixture2d.score_fn(sde), (2,)).double()
    x = mixture2d.sample(30, seed=9)
    whole = torch.cat([model.log_prob(x[:16]), model.log_prob(x[16:])])
    torch.testing.assert_close(model.log_prob(x, batch_size=16, progress=False), whole)


def test_bits_per_dim_of_uniform_and_rescaled_data():
    """Dequantised uniform bytes have density 1 on [0, 1)^D: 8 bits/dim. A model of
    y = 2x - 1 sees the uniform density on [-1, 1)^D, and log_scale = ln 2 undoes the map."""
    from sdescore.datasets import dequantize

    x = dequantize(np.random.default_rng(0).integers(0, 256, (1000, 5)), seed=1)
    assert x.min() >= 0 and x.max() < 1
    nll_x = torch.zeros(1000)  # uniform density on the unit cube
    assert torch.allclose(sdescore.bits_per_dim(nll_x, 5), torch.full((1000,), 8.0))
    y = 2 * torch.as_tensor(x, dtype=torch.float64) - 1
    nll_y = -torch.distributions.Uniform(-1.0, 1.0).log_prob(y).sum(1)  # the same law seen in y
    torch.testing.assert_close(sdescore.bits_per_dim(nll_y, 5, log_scale=math.log(2)),
                               torch.full_like(nll_y, 8.0))
    with pytest.raises(ValueError, match=r"integers in \[0, 255\]"):
        dequantize([[256]])
    with pytest.raises(TypeError, match="must hold integers"):
        dequantize([[0.5]])


def test_bits_per_dim_of_a_gaussian_model_matches_the_binned_probability():
    """For a smooth density, the density at a bin's centre times the bin width is the bin's
    probability up to second order, so bits/dim there equals -log2 P(bin) / D."""
    dist = torch.distributions.Normal(torch.tensor(0.5, dtype=torch.float64), 0.1)
    bins = torch.tensor([[94.0], [133.0], [156.0]], dtype=torch.float64)
    nll = -dist.log_prob((bins + 0.5) / 256).sum(1)
    prob = dist.cdf((bins + 1) / 256) - dist.cdf(bins / 256)
    torch.testing.assert_close(sdescore.bits_per_dim(nll, 1), -torch.log2(prob).sum(1),
                               atol=1e-4, rtol=0)
