"""The Gaussians of ``fit``'s default parameterisation: the best Gaussian of the training
rows, offered by held-out selection as step 0 and returned when no trained record beats it
(the floor), and the Gaussian the network departs from.

The rows are in model coordinates (standardised: zero mean, unit variance per column), so
the Gaussian is N(0, Sigma) with Sigma the rows' covariance shrunk toward its own diagonal
by an amount chosen by cross-validation of the Gaussian's likelihood on every given row.
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch

from .._checks import warn
from ..datamap import DataMap
from ..models.score import ScoreModel
from ..nets import zero_output_layer
from ..parameterization import GaussianResidual
from .engine import clearly_worse

__all__ = ["check_the_floor", "choose_shrinkage", "fitted_reference", "FLOOR_CHECK_ROWS",
           "floor_of", "gaussian_candidate", "gaussian_log_prob", "gaussian_of_all_rows",
           "LEARNING_SHRINKAGE", "MAX_FULL_DIM", "Reference", "reference_covariance", "RIDGE",
           "SHRINKAGES"]

SHRINKAGES = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
"""The shrinkage amounts ``choose_shrinkage`` tries, 0 the sample covariance and 1 its
diagonal (independent columns)."""

_FOLDS = 5
#: Added to the diagonal of a reference covariance, times its mean variance.
RIDGE = 1e-6
#: At most this many held-out rows check a trained record's exact log-density against the
#: Gaussian floor.
FLOOR_CHECK_ROWS = 512
MAX_FULL_DIM = 512
"""Above this many columns the reference is the diagonal Gaussian (N(0, I) in standardised
coordinates): the full covariance's cross-validation costs 55 eigendecompositions and its
file d^2 numbers."""


def reference_covariance(rows: torch.Tensor, shrinkage: float) -> torch.Tensor:
    """The (d, d) float64 covariance (on the CPU) of ``rows`` (n, d), moved ``shrinkage``
    (in [0, 1]) of the way to its diagonal: (1 - shrinkage) S + shrinkage diag(S), plus
    RIDGE times the mean variance on the diagonal (and that ridge alone for a column
    without spread), so that it is positive definite whenever shrinkage > 0."""
    if not 0 <= shrinkage <= 1:
        raise ValueError(f"shrinkage must be in [0, 1]; got {shrinkage}")
    rows = rows.detach().to("cpu", torch.float64)
    sample = torch.cov(rows.T).reshape(rows.shape[1], rows.shape[1])
    floor = RIDGE * max(torch.diagonal(sample).mean().item(), 1.0)
    return ((1 - shrinkage) * sample + shrinkage * torch.diag(torch.diagonal(sample))
            + floor * torch.eye(rows.shape[1], dtype=torch.float64))


def gaussian_log_prob(rows: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
    """log N(row; 0, covariance) in nats for each of ``rows`` (n, d), float64 (n,); -inf for
    every row when ``covariance`` (d, d) is not positive definite."""
    rows = rows.detach().to("cpu", torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance.to(torch.float64))
    if eigenvalues.min() <= 1e-10 * eigenvalues.max().clamp(min=1e-300):
        return torch.full((rows.shape[0],), -math.inf, dtype=torch.float64)
    projected = rows @ eigenvectors
    return -0.5 * ((projected**2 / eigenvalues).sum(1) + eigenvalues.log().sum()
                   + rows.shape[1] * math.log(2 * math.pi))


def choose_shrinkage(rows: torch.Tensor, generator: torch.Generator | None = None) -> float:
    """The ``SHRINKAGES`` entry whose ``reference_covariance`` gives the highest 5-fold
    cross-validated ``gaussian_log_prob`` of ``rows`` (n, d), the folds drawn from
    ``generator``; ties go to the larger shrinkage, and below 10 rows it is 1 (the
    diagonal)."""
    rows = rows.detach().to("cpu", torch.float64)
    if rows.shape[0] < 2 * _FOLDS:
        return 1.0
    folds = torch.randperm(rows.shape[0], generator=generator).chunk(_FOLDS)
    pairs = [(rows[torch.cat([f for j, f in enumerate(folds) if j != i])], rows[fold])
             for i, fold in enumerate(folds)]
    scores = [float(sum(gaussian_log_prob(scored, reference_covariance(fitted, shrinkage)).sum()
                        for fitted, scored in pairs))
              for shrinkage in SHRINKAGES]
    best = max(scores)
    return max(s for s, score in zip(SHRINKAGES, scores) if score == best)


class Reference(NamedTuple):
    """The Gaussians of ``fit``'s default parameterisation. covariance: the training rows'
    best Gaussian N(0, covariance), (d, d) float64, or None for the identity (the diagonal
    Gaussian of standardised rows, above MAX_FULL_DIM columns); shrinkage: its amount (1 for
    the diagonal). network_covariance: the Gaussian the network departs from, the same rows'
    covariance shrunk at least LEARNING_SHRINKAGE of the way to its diagonal (or None)."""

    shrinkage: float
    covariance: torch.Tensor | None
    network_covariance: torch.Tensor | None


LEARNING_SHRINKAGE = 0.5
"""The least shrinkage of the Gaussian the network departs from (it trains better than the
best Gaussian itself on the benchmark tables)."""


def fitted_reference(train: torch.Tensor, held: torch.Tensor | None) -> Reference:
    """The Gaussians of the training rows ``train`` (n, d): their covariance shrunk by the
    ``choose_shrinkage`` of every given row (``held`` (m, d) too; the folds from the global
    generator, so a seeded fit repeats), and by at least LEARNING_SHRINKAGE for the
    network."""
    if train.shape[1] > MAX_FULL_DIM:
        return Reference(1.0, None, None)
    given = train if held is None else torch.cat([train, held])
    shrinkage = choose_shrinkage(given)
    covariance = reference_covariance(train, shrinkage)
    if torch.linalg.eigvalsh(covariance).min() <= 0:  # a singular table: its diagonal
        shrinkage, covariance = 1.0, reference_covariance(train, 1.0)
    network = reference_covariance(train, max(shrinkage, LEARNING_SHRINKAGE))
    return Reference(shrinkage, covariance, network)


def gaussian_candidate(score_net: GaussianResidual, reference: Reference) -> dict | None:
    """The step-0 candidate of ``train_loop`` (its ``initial``): ``score_net``'s network,
    copied with its output layer zeroed, behind the best Gaussian ``reference.covariance``:
    that Gaussian exactly, with ``score_net``'s architecture (its weights load into the
    trained module). None for a network without an output layer to zero. Its record says
    "reference": "gaussian", the shrinkage, and "diagonal": True when the columns were too
    many for a full covariance."""
    net = copy.deepcopy(score_net.net)
    try:
        zero_output_layer(net)
    except TypeError:
        return None
    gaussian = GaussianResidual(net, score_net.sde, score_net.input_clip,
                                covariance=reference.covariance, envelope=score_net.envelope)
    record = {"reference": "gaussian", "shrinkage": reference.shrinkage}
    if reference.covariance is None:
        record["diagonal"] = True
    return {"name": "the fitted Gaussian (step 0)", "module": gaussian, "record": record}


def check_the_floor(model, data, covariance: torch.Tensor | None, history: list[dict]) -> None:
    """The held-out bound can favour a model whose exact likelihood is worse (early in
    training the reverse SDE's bound and the probability-flow density differ), so the chosen
    record must also beat the fitted Gaussian by the exact log-density: on up to
    FLOOR_CHECK_ROWS held-out rows, ``model.log_prob(method="dpm")`` against the Gaussian's
    closed form, by one paired standard error. Otherwise step 0 is selected instead (the
    caller returns that Gaussian) and one warning line says so.
    Both means are kept in their records as ``held_out_log_prob`` (nats per row).

    model: the fitted ScoreModel; data: the ``Prepared`` data; covariance: the reference
    (d, d) or None (the identity); history: the fit's records, step 0 first."""
    held = data.held[0][:FLOOR_CHECK_ROWS]
    if covariance is None:
        covariance = torch.eye(held.shape[1], dtype=torch.float64)
    gaussian = gaussian_log_prob(held, covariance) + data.datamap.log_det.item()
    trained = model.log_prob(data.datamap.to_data(held), method="dpm").double().cpu()
    chosen = next(r for r in history if r.get("selected"))
    chosen["held_out_log_prob"] = trained.mean().item()
    history[0]["held_out_log_prob"] = gaussian.mean().item()
    if clearly_worse(-gaussian, -trained, z=1.0):
        return
    del chosen["selected"]
    history[0]["selected"] = True
    warn(f"the fitted Gaussian (step 0) has the higher exact log-density on the "
                  f"held-out rows ({gaussian.mean().item():.4g} against "
                  f"{trained.mean().item():.4g} nats per row at step {chosen['step']}): it is "
                  "returned")


def floor_of(model: ScoreModel, candidate: GaussianResidual, reference: Reference, data,
             standardize: bool) -> ScoreModel:
    """What ``fit`` returns after training with the step-0 ``candidate``: ``model`` (its
    ``history`` step 0 first) when a trained record was selected and passes
    ``check_the_floor``; else the fitted Gaussian, refitted to every given row
    (``gaussian_of_all_rows``) for continuous data, as trained for integer data."""
    history = model.history
    if not history[0].get("selected"):
        check_the_floor(model, data, reference.covariance, history)
    if not history[0].get("selected"):
        return model
    gaussian, datamap = candidate, data.datamap
    if data.levels is None:
        gaussian, datamap = gaussian_of_all_rows(candidate, data, standardize,
                                                 reference.shrinkage)
    floor = ScoreModel(model.sde, gaussian, data.shape, datamap=datamap, levels=data.levels)
    floor.history = history
    return floor.to(data.device, data.dtype)


def gaussian_of_all_rows(untrained: GaussianResidual, data, standardize: bool,
                         shrinkage: float) -> tuple[GaussianResidual, DataMap]:
    """(the score of the Gaussian fitted to every given row, held-out ones too, with
    ``shrinkage``; its data map): what ``fit`` returns when step 0 is selected. The network
    of ``untrained`` (the step-0 candidate) outputs zero."""
    datamap = DataMap.standardizing(data.x) if standardize else DataMap.identity(data.shape)
    rows = datamap.to_model(data.x, torch.float64)
    covariance = (reference_covariance(rows, shrinkage) if rows.shape[1] <= MAX_FULL_DIM
                  else None)  # the identity: the diagonal Gaussian of standardised rows
    gaussian = GaussianResidual(untrained.net, untrained.sde, untrained.input_clip,
                                covariance=covariance, envelope=untrained.envelope)
    return gaussian.to(data.device, data.dtype), datamap
