"""What a solver method declares: ``Method`` (the function that runs it, the options it
takes with the check of each, what it needs and does) and the option checks it is built
from. ``SAMPLERS`` (``samplers``) and ``LIKELIHOODS`` (``likelihood``) are dicts of these;
adding a method is adding one entry, and an option no entry declares is refused by name.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

from .._checks import check_count, check_positive
from .adapters import ADAPTIVE_SOLVERS, FIXED_SOLVERS
from .schedules import SPACINGS

__all__ = ["check_ode_options", "count", "Method", "ODE_OPTIONS", "one_of", "order", "positive",
           "positive_integer"]


def positive(value, name):
    check_positive(value, name=name)


def positive_integer(value, name):
    check_positive(value, name=name, integer=True)


def count(value, name):
    check_count(value, name=name)


def one_of(choices):
    """A check that the value is one of the names ``choices``."""
    def check(value, name):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a name (str); got {type(value).__name__}")
        if value not in choices:
            raise ValueError(f"Unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return check


def order(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in (1, 2, 3):
        raise ValueError(f"{name} must be the integer 1, 2 or 3; got {value!r}")


spacing = one_of(SPACINGS)


def _ode_solver(value, name):
    if value == "dpm":
        raise ValueError("'dpm' is a method, not an ODE solver: pass method='dpm'")
    one_of(ADAPTIVE_SOLVERS + FIXED_SOLVERS)(value, name)


#: The options of the ``ode`` methods and the check of each.
ODE_OPTIONS = {"solver": _ode_solver, "rtol": positive, "atol": positive,
               "steps": positive_integer, "max_steps": positive_integer}


def check_ode_options(options: dict) -> str | None:
    """Why a torchdiffeq solve would ignore one of ``options``, or None: an adaptive solver
    (the default dopri5) takes no ``steps``, a fixed-grid one no rtol, atol or max_steps."""
    solver = options.get("solver", "dopri5")
    unused = (("steps",) if solver in ADAPTIVE_SOLVERS
              else ("rtol", "atol", "max_steps"))
    given = [key for key in unused if key in options]
    if given:
        kind = "adaptive" if solver in ADAPTIVE_SOLVERS else "fixed-grid"
        return (f"{given[0]} does nothing for the {kind} solver {solver!r} (adaptive: rtol, "
                f"atol, max_steps; fixed-grid {', '.join(FIXED_SOLVERS)}: steps)")
    return None


@dataclass(frozen=True)
class Method:
    """A solver method and what it needs and does.

    run: the function; options: each option it takes -> the check of its value (defaults
    are ``run``'s own); together(options) -> a reason the combination is refused, or None;
    sde_type: the one SDE class it works for (None: any), ``requirement`` says why;
    denoises: a sampler that ends with its own denoising step (no Tweedie step follows).
    """

    run: Callable
    options: dict
    together: Callable | None = None
    sde_type: type | None = None
    requirement: str = ""
    denoises: bool = False

    def check(self, caller: str, name: str, sde, options: dict) -> None:
        """Refuse an SDE this method does not work for, an option it does not take, an
        option value it cannot use and options it would ignore together, naming each."""
        if self.sde_type is not None and type(sde) is not self.sde_type:
            raise ValueError(f"method {name!r} needs a {self.sde_type.__name__}: "
                             f"{self.requirement}; got {sde!r}")
        for key, value in options.items():
            if key not in self.options:
                raise TypeError(f"{caller}() got an unexpected keyword argument {key!r} for "
                                f"method {name!r}; its options are: {', '.join(self.options)}")
            self.options[key](value, key)
        reason = self.together(options) if self.together is not None else None
        if reason:
            raise ValueError(f"method {name!r}: {reason}")
