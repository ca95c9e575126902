"""Exact for every row (issue 31): the default log_prob holds each row's error to the
tolerance on its own, so that the worst row is close to a tight float64 solve, a row's value
does not move with the rows beside it, and the error it reports covers the true one."""
import copy

import pytest
import torch

import sdescore
from sdescore.datasets import random_mixture

SDES = {"vp": {}, "subvp": {}, "ve": {"sigma_max": 50.0}}


def _exact(dim, sde_name, rows):
    """The exact score of random_mixture(dim), rows of it, and a float64 dopri8 solve of the
    same probability-flow ODE at rtol = atol = 1e-10 (the truth the solver is judged by)."""
    mixture = random_mixture(dim, 3, seed=dim)
    sde = sdescore.get_sde(sde_name, **SDES[sde_name])
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (dim,))
    x = mixture.sample(rows, seed=1)
    tight = copy.deepcopy(model).double().log_prob(x.double(), solver="dopri8", rtol=1e-10,
                                                   atol=1e-10)
    return model, x.float(), tight


@pytest.mark.parametrize("dim, rows", [(2, 300), (16, 150)])
@pytest.mark.parametrize("sde_name", list(SDES))
def test_the_worst_row_is_within_2e_3_nats_of_a_tight_float64_solve(dim, rows, sde_name):
    """Measured worst rows at the defaults: 5e-4 nats or less in 2-64 dimensions (the shared
    step size of before left 1.2e-2 in 6-D and 4e-2 in 16-D); the reported error covers the
    true one on at least 95% of the rows."""
    model, x, tight = _exact(dim, sde_name, rows)
    estimate = model.log_prob(x, return_error=True)
    error = (estimate.log_prob.double() - tight).abs()
    assert error.max() <= 2e-3, f"worst row {error.max():.2e} nats"
    covered = (error <= estimate.solver_error.double()).double().mean()
    assert covered >= 0.95, f"the estimate covers {covered:.1%} of rows"
    assert estimate.trace_stderr is None  # exact trace


@pytest.mark.parametrize("sde_name", list(SDES))
def test_far_out_rows_are_as_exact_as_typical_ones(sde_name):
    """Anomalies, the rows a user scores to flag them: the mixture's rows moved 3x farther
    from the origin, where the score is large and a small error in the sample is a large one
    in log p. Each step's error is measured in the answer (through the score), so these stay
    within 2e-3 nats too (measured with the sample's error held relative to its size alone:
    1.1e-3 to 8.1e-3 nats in 2-16 D), and the reported error still covers the true one."""
    mixture = random_mixture(16, 3, seed=16)
    sde = sdescore.get_sde(sde_name, **SDES[sde_name])
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (16,))
    x = 3 * mixture.sample(40, seed=2)
    tight = copy.deepcopy(model).double().log_prob(x.double(), solver="dopri8", rtol=1e-10,
                                                   atol=1e-10)
    estimate = model.log_prob(x.float(), return_error=True)
    error = (estimate.log_prob.double() - tight).abs()
    assert error.max() <= 2e-3, f"worst far-out row {error.max():.2e} nats"
    assert (error <= estimate.solver_error.double()).double().mean() >= 0.95


def test_a_rows_value_is_the_same_alone_in_any_order_and_in_shards():
    model, x, _ = _exact(6, "subvp", 200)
    batch = model.log_prob(x)
    alone = torch.cat([model.log_prob(x[i:i + 1]) for i in range(0, 200, 20)])
    torch.testing.assert_close(alone, batch[::20], rtol=0, atol=1e-4)
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    shuffled = torch.empty_like(batch)
    shuffled[order] = model.log_prob(x[order])
    torch.testing.assert_close(shuffled, batch, rtol=0, atol=1e-4)
    shards = torch.cat([model.log_prob(x[:70]), model.log_prob(x[70:])])
    torch.testing.assert_close(shards, batch, rtol=0, atol=1e-4)
    hard_rows_beside = torch.cat([x[:5], 3 * x[5:]])  # far-out rows take more steps
    torch.testing.assert_close(model.log_prob(hard_rows_beside)[:5], batch[:5], rtol=0,
                               atol=1e-4)


def test_hutchinsons_estimate_of_a_row_is_the_same_alone_in_any_order_and_batching():
    """Each row's probes come from the seed and that row's values, so with a seed its
    estimate does not move with the rows beside it (with probes drawn for the batch, a row's
    estimate moved by the estimator's own noise, several nats here); another seed draws
    other probes."""
    model, x, _ = _exact(6, "vp", 120)
    options = {"trace": "hutchinson", "probes": 2, "seed": 3}
    batch = model.log_prob(x, **options)
    alone = torch.cat([model.log_prob(x[i:i + 1], **options) for i in range(0, 120, 30)])
    torch.testing.assert_close(alone, batch[::30], rtol=0, atol=1e-4)
    torch.testing.assert_close(model.log_prob(x.flip(0), **options).flip(0), batch, rtol=0,
                               atol=1e-4)
    torch.testing.assert_close(model.log_prob(x, batch_size=50, **options), batch, rtol=0,
                               atol=1e-4)
    other = model.log_prob(x, **{**options, "seed": 4})
    assert (other - batch).abs().median() > 0.05


def test_hutchinsons_standard_error_is_the_spread_of_its_probes():
    """With k probes the reported trace_stderr is the standard error of the mean of the k
    per-probe log-densities: three of them cover |estimate - exact| on at least 95% of rows
    with 16 probes (a t distribution with 15 degrees of freedom puts 99% within 3; with 4
    probes, 3 degrees of freedom, only 94%), and it shrinks as 1 / sqrt(k)."""
    model, x, tight = _exact(6, "vp", 200)
    few = model.log_prob(x, trace="hutchinson", probes=4, seed=0, return_error=True)
    many = model.log_prob(x, trace="hutchinson", probes=16, seed=0, return_error=True)
    error = (many.log_prob.double() - tight).abs()
    assert (error <= 3 * many.trace_stderr.double()).double().mean() >= 0.95
    ratio = (few.trace_stderr / many.trace_stderr).median().item()
    assert 1.6 < ratio < 2.5  # sqrt(16 / 4) = 2
    one = model.log_prob(x[:3], trace="hutchinson", seed=0, return_error=True)
    assert torch.isnan(one.trace_stderr).all()  # one probe: no spread to measure


def test_methods_without_error_control_say_so():
    model, x, _ = _exact(2, "vp", 20)
    for options in ({"solver": "rk4", "steps": 10}, {"solver": "bosh3"}):
        assert torch.isnan(model.log_prob(x, return_error=True, **options).solver_error).all()


@pytest.mark.parametrize("sde_name", list(SDES))
def test_the_dpm_presets_estimate_covers_its_error_and_flags_its_bad_rows(sde_name):
    """The dpm preset has no error control; its solver_error (the cubic quadrature's
    disagreement with the trapezoid rule) covers the true error on at least 95% of the rows
    (measured 99.2-100% in 2-16 D) and exceeds 1e-2 nats on every row off by more than
    that, so a user can tell which rows to score again with the default."""
    model, x, tight = _exact(6, sde_name, 400)
    estimate = model.log_prob(x, method="dpm", return_error=True)
    error = (estimate.log_prob.double() - tight).abs()
    solver_error = estimate.solver_error.double()
    assert (error <= solver_error).double().mean() >= 0.95
    assert (solver_error[error > 1e-2] > 1e-2).all()
    assert solver_error.median() < 0.1  # informative: measured 0.02-0.05 nats here


def test_a_rows_value_does_not_move_with_the_rounding_of_its_score():
    """A score's float32 arithmetic changes with the rows beside it (a matrix product's
    blocking), by an ulp or so; a row's value must not move with it by more than 1e-4. Here
    the rounding is simulated: the exact score of a 32-D mixture (VP, beta_max = 10) times
    1 + 1e-7 z, z a fresh standard normal at every call, drawn from three seeds. Before the
    dense output's defect was taken net of its rounding and the midpoint was in the
    quadrature's estimate, the rows' values spread over up to 1.5e-4 nats (their steps
    followed the noise onto paths whose error the estimate missed); 3.8e-5 since."""
    mixture = random_mixture(32, 4, seed=4)
    sde = sdescore.get_sde("vp", beta_max=10.0)
    exact = mixture.score_fn(sde)
    x = mixture.sample(40, seed=1).float()

    def rounded_model(seed):
        generator = torch.Generator().manual_seed(seed)

        def score(v, t):
            s = exact(v, t)
            return s * (1 + 1e-7 * torch.randn(s.shape, generator=generator))
        return sdescore.ScoreModel(sde, score, (32,))

    values = torch.stack([rounded_model(seed).log_prob(x) for seed in range(3)])
    spread = (values - values[0]).abs().max()
    assert spread <= 1e-4, f"a row moved by {spread:.2e} nats with the rounding"
