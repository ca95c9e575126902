"""The per-row Dormand-Prince solver (solvers/per_row.py): its running integrals by
Gauss-Lobatto quadrature on each step's dense output, their error estimated and held to atol,
on integrals with closed forms, a bump among them that enters a step between its nodes; and
the dense output's defect in the goal's error, on a feature in t that the stages straddle."""
import math

import pytest
import torch

from sdescore.solvers.per_row import solve_per_row


def _decay(t, y, rows):
    """dy/dt = -k y with a rate k per row, and no goal (zero weights)."""
    rates = (1 + rows.to(y.dtype))[:, None]
    return -rates * y, torch.zeros_like(y)


@pytest.mark.parametrize("atol", [1e-5, 1e-8])
def test_the_integral_of_a_function_of_the_solution_matches_its_closed_form(atol):
    """y' = -k y, y(0) = 1, so y = exp(-k t); the integral of y^2 over [0, 2] is
    (1 - exp(-4 k)) / (2 k), and of cos(3 t) y it is the same for every row's k in closed
    form too. Both hold to about atol per unit of t (the error estimate that covers them is
    the goal's, tested on the likelihoods of tests/test_likelihood_rows.py)."""
    n = 6
    y0 = torch.ones(n, 1, dtype=torch.float64)

    def integrand(t, y, rows):
        return torch.stack([y[:, 0] ** 2, torch.cos(3 * t) * y[:, 0]]), _decay(t, y, rows)[0]

    solution = solve_per_row(_decay, integrand, y0, 0.0, 2.0, rtol=atol, atol=atol,
                             max_steps=10_000)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    squares = (1 - torch.exp(-4 * k)) / (2 * k)
    # integral of cos(3t) exp(-kt) over [0, 2]
    cosine = (k + torch.exp(-2 * k) * (3 * math.sin(6) - k * math.cos(6))) / (k**2 + 9)
    truth = torch.stack([squares, cosine], 1)
    error = (solution.integrals - truth).abs()
    assert error.max() <= 10 * atol, error.max()


def test_the_quadratures_own_error_sets_the_step_where_the_state_is_still():
    """The state does not move (y' = 0), so its error never limits the step, which would grow
    tenfold each time: only the quadrature's error estimate (a degree-6 interpolant against
    the Gauss-Lobatto rule) holds the steps to what cos(40 t) needs. Its integral over
    [0, 1], sin(40) / 40, is met to about atol, and tighter with a tighter atol."""
    y0 = torch.zeros(3, 1, dtype=torch.float64)

    def still(t, y, rows):
        return torch.zeros_like(y), torch.zeros_like(y)

    def oscillation(t, y, rows):
        return torch.cos(40 * t)[None], torch.zeros_like(y)

    truth = math.sin(40) / 40
    errors, steps = [], []
    for atol in (1e-5, 1e-8):
        solution = solve_per_row(still, oscillation, y0, 0.0, 1.0, rtol=atol, atol=atol,
                                 max_steps=10_000)
        errors.append((solution.integrals[:, 0] - truth).abs().max().item())
        steps.append(solution.steps[0].item())
        assert errors[-1] <= 10 * atol, (atol, errors[-1])
    assert steps[1] > steps[0] >= 10  # the steps shrank onto the oscillation


def test_a_rows_integral_does_not_depend_on_the_rows_beside_it():
    y0 = torch.linspace(0.5, 2.0, 8, dtype=torch.float64)[:, None]

    def integrand(t, y, rows):
        return (torch.sin(5 * t) * y[:, 0] ** 3)[None], _decay(t, y, rows)[0]

    together = solve_per_row(_decay, integrand, y0, 0.0, 1.5, rtol=1e-7, atol=1e-7,
                             max_steps=10_000)
    for row in (0, 5):
        alone = solve_per_row(lambda t, y, rows: _decay(t, y, rows + row),
                              lambda t, y, rows: integrand(t, y, rows + row),
                              y0[row:row + 1], 0.0, 1.5, rtol=1e-7, atol=1e-7,
                              max_steps=10_000)
        assert alone.steps.item() == together.steps[row].item()
        torch.testing.assert_close(alone.integrals[0], together.integrals[row], rtol=0,
                                   atol=1e-14)


def test_a_pulse_in_t_between_the_stages_is_seen_by_the_dense_outputs_defect():
    """y' = -y + a pulse of width 0.02 in t centred at c (one c per row, spread over the
    span), y(0) = 1, the goal y(1) itself (weights 1). The steps the smooth part allows are
    several pulse widths long, so on some rows all six stages fall beside the pulse and the
    embedded pair agrees on a wrong step (alone it left rows 8e-3 off, 30% of them beyond
    their estimate). The defect at the quadrature's interior nodes sees the pulse there:
    every row within 10 atol of the closed form, and the reported error (twice the sum of
    the steps' estimates, as log_prob reports it) covers at least 95% of the rows."""
    n, width, amplitude, atol = 400, 0.02, 0.01, 1e-6
    centres = torch.linspace(0.15, 0.85, n, dtype=torch.float64)

    def flow(t, y, rows):
        pulse = torch.exp(-((t - centres[rows]) / width) ** 2) / (width * math.sqrt(math.pi))
        return -y + amplitude * pulse[:, None], torch.ones_like(y)

    def integrand(t, y, rows):
        return torch.zeros(1, len(rows), dtype=y.dtype), flow(t, y, rows)[0]

    solution = solve_per_row(flow, integrand, torch.ones(n, 1, dtype=torch.float64), 0.0, 1.0,
                             rtol=atol, atol=atol, max_steps=10_000)
    # y(1) = exp(-1) + a exp(-(1 - c)) int exp(u) pulse(u) du, the square completed in u
    shift = width**2 / 2
    pulse_part = 0.5 * math.exp(width**2 / 4) * (torch.erf((1 - centres - shift) / width)
                                                 - torch.erf((-centres - shift) / width))
    truth = math.exp(-1) + amplitude * torch.exp(-(1 - centres)) * pulse_part
    error = (solution.y1[:, 0] - truth).abs()
    assert error.max() <= 10 * atol, error.max()
    covered = (error <= 2 * solution.goal_errors).double().mean()
    assert covered >= 0.95, covered


def test_a_bump_in_the_integrand_that_enters_a_step_between_its_nodes_is_seen():
    """The state does not move, so the quadrature's estimate alone sets the steps; the
    integrand is cos(2 t) plus a bump exp(-((t - c) / 0.05)^2), one centre c per row spread
    over the span. A long step over smooth ground reaches a bump that no node of the
    previous step saw: extrapolated from that step alone the estimate left 43 of 200 rows
    beyond 10 atol (1e-4 off at worst). With the step's midpoint in the estimate every row
    is within 10 atol of the closed form (erf), and the reported error (twice the sum of the
    steps' estimates, as log_prob reports it) covers at least 95% of the rows (70% before)."""
    n, width, atol = 200, 0.05, 1e-7
    centres = torch.linspace(0.2, 0.8, n, dtype=torch.float64)

    def still(t, y, rows):
        return torch.zeros_like(y), torch.zeros_like(y)

    def bump(t, y, rows):
        values = torch.exp(-((t - centres[rows]) / width) ** 2) + torch.cos(2 * t)
        return values[None], torch.zeros_like(y)

    solution = solve_per_row(still, bump, torch.zeros(n, 1, dtype=torch.float64), 0.0, 1.0,
                             rtol=atol, atol=atol, max_steps=10_000)
    truth = (width * math.sqrt(math.pi) / 2
             * (torch.erf((1 - centres) / width) - torch.erf(-centres / width))
             + math.sin(2) / 2)
    error = (solution.integrals[:, 0] - truth).abs()
    assert error.max() <= 10 * atol, error.max()
    covered = (error <= 2 * solution.goal_errors).double().mean()
    assert covered >= 0.95, covered
