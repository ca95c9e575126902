"""The per-row Dormand-Prince (``solvers.per_row``) steps every row as scipy's RK45 steps
that row alone: the same tableau, error norm and step-size controller."""
import numpy as np
import torch
from scipy.integrate import solve_ivp

from sdescore.solvers import per_row

# dy/dt = cos(a t^2) y + sin(3 t), y(0) = 1 on [0, 3]: the faster a, the faster the error
# rises along t, which is where step-size controllers differ.
RATES = [1.0, 4.0, 9.0, 25.0]
TOL = 1e-6


def derivative(rates):
    def func(t, y, rows):
        return torch.cos(rates[rows] * t * t)[:, None] * y + torch.sin(3 * t)[:, None]
    return func


def first_steps(func, y0):
    """The per-row solver's initial step of every row, to hand to scipy as ``first_step``."""
    rows = torch.arange(len(y0))
    t0 = torch.zeros(len(y0), dtype=torch.float64)

    def norm(value):
        return value.square().mean(1).sqrt()
    return per_row._initial_step(lambda t, y, r: func(t, y, r), t0, y0, func(t0, y0, rows),
                                 rows, norm, TOL, TOL, 3.0)


def test_each_row_takes_scipys_rk45_steps_for_that_row_alone():
    rates = torch.tensor(RATES, dtype=torch.float64)
    func = derivative(rates)
    y0 = torch.ones(len(RATES), 1, dtype=torch.float64)
    together = per_row.solve_per_row(func, y0, 0.0, 3.0, parts=[slice(0, 1)], rtol=TOL,
                                     atol=TOL, max_steps=10_000)
    for i, (rate, h0) in enumerate(zip(RATES, first_steps(func, y0).tolist())):
        scipy = solve_ivp(lambda t, y: np.cos(rate * t * t) * y + np.sin(3 * t), (0.0, 3.0),
                          [1.0], method="RK45", rtol=TOL, atol=TOL, first_step=h0)
        alone = per_row.solve_per_row(lambda t, y, rows: func(t, y, torch.full_like(rows, i)),
                                      y0[i:i + 1], 0.0, 3.0, parts=[slice(0, 1)], rtol=TOL,
                                      atol=TOL, max_steps=10_000)
        # accepted steps, and attempts: 6 evaluations each after the first derivative (the
        # per-row solver makes one more, its initial step's trial, which scipy was handed)
        assert together.steps[i].item() == len(scipy.t) - 1
        assert alone.evaluations - 1 == scipy.nfev
        assert abs(together.y1[i, 0].item() - scipy.y[0, -1]) < 1e-10
        assert abs(alone.y1[0, 0].item() - scipy.y[0, -1]) < 1e-10
