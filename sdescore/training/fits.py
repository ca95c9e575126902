"""The three fits: a score model (``fit``), a normalizing flow (``fit_flow``) and a noisy
classifier (``fit_classifier``).

Each takes its model's own options and a ``TrainConfig`` (or keyword overrides of its
fields, ``fit(x, lr=1e-3)``), prepares the data the same way (``data.prepared``), builds its
model and hands it to the engine (``engine.train_loop``) with its loss and held-out measure.
"""
from __future__ import annotations

import functools
import math
import numbers

import torch
from torch import nn

from .._checks import as_dataset, check_positive, choose, warn
from ..losses import UniformTimes, get_loss, training_objective, with_labels_argument
from ..models.classifier import NoisyClassifier
from ..models.flow import FLOWS, FlowModel
from ..models.score import ScoreModel
from ..nets import default_classifier_net, default_net
from ..parameterization import PARAMETERIZATIONS, GaussianResidual
from ..sde import SDE, sde_for_data
from .config import TrainConfig, score_batch_and_lr, train_config
from .data import prepared
from .engine import train_loop
from .optim import WeightAverage, adam
from .reference import fitted_reference, floor_of, gaussian_candidate
from .selection import MEASURES, held_out_loss, held_out_nll, held_out_nll_bound

__all__ = ["fit", "fit_classifier", "fit_flow"]


def fit(data, sde="subvp", *, loss="dsm", net=None, parameterization="residual",
        standardize: bool = True, eps: float | None = None, labels=None,
        label_dropout: float = 0.1, levels: int | None = None,
        config: TrainConfig | None = None, **options) -> ScoreModel:
    """Train a score model on ``data`` and return it as a ScoreModel in the data's coordinates.

    Arguments:
        data: (n, d) vectors or (n, c, h, w) images (array-like).
        sde: "subvp", "vp", "ve" or an SDE object; VE's sigma_max defaults to the largest
            distance between standardised points.
        loss: "dsm" (lambda = s^2), "dsm-likelihood" (lambda = g^2, importance-sampled t),
            "ssm", "ssm-vr", "ncsn", or a loss object from ``sdescore.losses``.
        net: a network taking (x, t) (default: an MLP ``nets.default_width(d)`` wide for
            vectors, a U-Net for images).
        parameterization: "residual" (the network predicts how the noise departs from its
            value for a reference Gaussian, from an input whitened by that Gaussian and
            soft-clipped to 3 standard deviations; see ``parameterization.GaussianResidual``):
            for vectors the standardised training rows' covariance shrunk toward its
            diagonal by the cross-validated amount, at least halfway
            (``training.reference.LEARNING_SHRINKAGE``), with the departure scaled by the
            signal's share m^2 / (m^2 + s^2) (``envelope="snr"``), for images N(0, I) with
            the departure unscaled; "noise"
            (score = -output / s(t)), "score", or a callable (net, sde) -> score module.
        standardize: map the data to zero mean, unit variance inside the model.
        eps: smallest training time (default ``sde.likelihood_eps``).
        labels: (n,) integer classes 0..K-1 for a class-conditional model (classifier-free
            guidance): the network learns score(x, t, y), and each training label is
            replaced by the null label with probability ``label_dropout``, so that it also
            learns score(x, t).
        levels: for integer data k in {0, ..., levels - 1} (default 256 for uint8 data): the
            model is fitted to x = (k + u) / levels in [0, 1), with fresh uniform u at every
            batch, and keeps ``levels`` for ``bits_per_dim``; other data are continuous.
        config, ``**options``: the training options (``TrainConfig``; default
            ``training.config.DEFAULTS["score"]``), each field overridable by keyword.
            batch_size None: ``default_batch_size`` of the rows' shape and device; lr None:
            ``optim.default_lr`` of the batch (cut to the training rows) and schedule.
            select_by: "nll-bound" (the per-row bound on -log p, 8 draws, fixed randomness)
            or "loss". The weights of the best held-out scoring are returned.

    Returns:
        A ScoreModel in eval mode, on the training device and dtype, whose ``history``
        lists {step, seconds, loss[, val_loss]} every ``log_every`` steps and at the last
        step; the chosen record says ``"selected": True``, a stop for lack of progress
        ``"stopped": "patience"``. With the residual parameterisation of unlabelled
        vectors, held-out rows and a network with an output layer to zero (the default
        MLP), the first record is step 0: the training rows' best Gaussian (their
        covariance shrunk by the cross-validated amount), scored but not trained
        ({step: 0, seconds, val_loss, reference: "gaussian", shrinkage}). A trained record
        is chosen over it only when better on the held-out rows by one standard error of
        the per-row difference, by the bound and then by the exact log-density
        (``training.reference.check_the_floor``); when step 0 is chosen (told in one
        warning line) the model returned is that Gaussian refitted to every given row.

    Raises:
        TypeError, ValueError: an option of the wrong type or value, named.

    Example:
        >>> import sdescore
        >>> from sdescore.datasets import toy
        >>> model = sdescore.fit(toy("moons", 2000, seed=0), steps=200, seed=0, progress=False)
        >>> model.log_prob(toy("moons", 5, seed=1)).shape
        torch.Size([5])
    """
    config = train_config("score", config, options, "fit")
    choose(config.select_by, MEASURES["score"], name="select_by")
    if eps is not None:
        check_positive(eps, name="eps")
        if eps >= SDE.T:
            raise ValueError(f"eps must be below T = {SDE.T}: it is the smallest training "
                             f"time; got {eps}")
    if net is not None and not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module taking (x, t); got {type(net).__name__}")
    wrap = (parameterization if callable(parameterization)
            else choose(parameterization, PARAMETERIZATIONS, name="parameterization"))
    if isinstance(label_dropout, bool) or not isinstance(label_dropout, numbers.Real):
        raise TypeError(f"label_dropout must be a number in [0, 1); got "
                        f"{type(label_dropout).__name__}")
    if labels is not None and not 0 <= label_dropout < 1:
        raise ValueError(f"label_dropout must be in [0, 1); got {label_dropout}")
    with prepared(data, config, labels=labels, levels=levels, standardize=standardize) as data:
        rows = data.train[0]
        sde_obj = sde_for_data(sde, rows)
        loss_fn = with_labels_argument(
            get_loss(loss, sde_obj, eps if eps is not None else sde_obj.likelihood_eps))
        initial, reference = None, None
        if parameterization == "residual" and rows.ndim == 2:  # vectors: their best Gaussian
            reference = fitted_reference(rows, None if data.held is None else data.held[0])
            wrap = functools.partial(GaussianResidual, covariance=reference.network_covariance,
                                     envelope="snr")
        score_net = wrap(net if net is not None else default_net(data.shape, data.classes),
                         sde_obj)
        score_net.to(data.device, data.dtype)
        if reference is not None and data.held is not None and data.classes is None:
            initial = gaussian_candidate(score_net, reference)
        batch_size, lr = score_batch_and_lr(config, data.shape, data.device, rows.shape[0])
        validate = None
        if data.held is not None:
            log_det, chunk = data.datamap.log_det.item(), 4 * batch_size
            validate = (held_out_nll_bound(sde_obj, data.held, log_det, chunk)
                        if config.select_by == "nll-bound"
                        else held_out_loss(loss_fn, data.held, chunk))
        objective = training_objective(loss_fn, augment=data.augment,
                                       label_dropout=label_dropout, null_label=data.classes)
        final, history = _train(score_net, objective, data, validate, config, batch_size, lr,
                                initial)
        model = ScoreModel(sde_obj, final, data.shape, datamap=data.datamap,
                           classes=data.classes, levels=data.levels).to(data.device, data.dtype)
        model.history = history
        if initial is not None:
            model = floor_of(model, initial["module"], reference, data, standardize)
    return model.eval()


def fit_flow(data, kind: str = "nsf", *, hidden: int = 128, layers: int = 6,
             standardize: bool = True, levels: int | None = None,
             config: TrainConfig | None = None, **options) -> FlowModel:
    """Train a normflows flow on ``data`` by maximum likelihood.

    Arguments:
        data: (n, d) vectors for kind "nsf" (autoregressive rational-quadratic splines with
            LU-linear permutations), "realnvp" (masked affine couplings with ActNorm) or
            "maf" (masked affine autoregressive); (n, c, h, w) images for "glow" (a
            squeeze, then Glow steps).
        hidden, layers: width and number of flow layers.
        standardize, levels: as in ``sdescore.fit``.
        config, ``**options``: the training options (``TrainConfig``; default
            ``training.config.DEFAULTS["flow"]``: 256-row batches, lr 1e-3, no weight
            average), selected by the held-out negative log-likelihood ("nll").

    Returns:
        A FlowModel in eval mode with its ``history``, as for ``sdescore.fit``.
    """
    config = train_config("flow", config, options, "fit_flow")
    choose(config.select_by, MEASURES["flow"], name="select_by")
    hidden = check_positive(hidden, name="hidden", integer=True)
    layers = check_positive(layers, name="layers", integer=True)
    choose(kind, FLOWS, name="kind")
    with prepared(data, config, levels=levels, standardize=standardize) as data:
        model = FlowModel(kind, data.shape, hidden, layers, data.datamap, data.levels)
        model.to(data.device, data.dtype)
        batch_size = min(config.batch_size, data.train[0].shape[0])
        validate = (None if data.held is None else
                    held_out_nll(data.held, data.datamap.log_det.item(), 4 * batch_size))
        objective = training_objective(lambda flow, x0: -flow.log_prob(x0), augment=data.augment)
        model.flow, model.history = _train(model.flow, objective, data, validate, config,
                                           batch_size, config.lr)
        if data.held is not None:
            _check_flow_converged(model, data)
    return model.eval()


def fit_classifier(data, labels, sde=None, *, model=None, standardize: bool = True,
                   hidden: int | None = None, net: nn.Module | None = None,
                   levels: int | None = None, config: TrainConfig | None = None,
                   **options) -> NoisyClassifier:
    """Train q_phi(y | x_t, t) by cross-entropy on x_t drawn from the SDE's kernel at
    t ~ U(sampling_eps, T).

    Arguments:
        data: (n, d) or (n, c, h, w); labels: (n,) integers 0..K-1.
        sde: as in ``fit`` (default "subvp"), without a model.
        model: a ScoreModel whose SDE and coordinates the classifier adopts, so that it can
            guide that model (then ``sde`` must be left out or match it).
        standardize: as in ``fit``, without a model.
        net: a network (x, t, y) -> log q(y | x, t) like ``nets.ConvClassifierNet``
            (default: that for images, ``NoisyClassifierNet`` ``hidden`` wide for vectors).
        levels: as in ``fit`` (default the model's levels).
        config, ``**options``: the training options (``TrainConfig``; default
            ``training.config.DEFAULTS["classifier"]``: 256-row batches, lr 1e-3 constant,
            no clipping, no weight average, no held-out rows), selected by "loss".

    Returns:
        A NoisyClassifier in eval mode with its ``history``.
    """
    config = train_config("classifier", config, options, "fit_classifier")
    choose(config.select_by, MEASURES["classifier"], name="select_by")
    if net is not None and not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module taking (x, t, y); got {type(net).__name__}")
    if hidden is not None:
        hidden = check_positive(hidden, name="hidden", integer=True)
    if model is not None and not isinstance(model, ScoreModel):
        raise TypeError(f"model must be the ScoreModel to guide; got {type(model).__name__}")
    if model is not None:
        _check_adopts(model, as_dataset(data), sde)
        levels = model.levels if levels is None else levels
    with prepared(data, config, labels=labels, levels=levels, standardize=standardize,
                  datamap=None if model is None else model.datamap) as data:
        sde_obj = model.sde if model is not None else sde_for_data(sde or "subvp", data.train[0])
        net = (net if net is not None
               else default_classifier_net(data.shape, data.classes, hidden))
        net.to(data.device, data.dtype)
        times = UniformTimes(sde_obj, sde_obj.sampling_eps)

        def cross_entropy(classifier_net, x0, y, generator=None):
            t, _ = times(x0.shape[0], dtype=x0.dtype, device=x0.device, generator=generator)
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            return -classifier_net(sde_obj.perturb(x0, t, noise), t, y)

        batch_size = min(config.batch_size, data.train[0].shape[0])
        validate = (None if data.held is None
                    else held_out_loss(cross_entropy, data.held, 4 * batch_size))
        objective = training_objective(cross_entropy, augment=data.augment)
        net, history = _train(net, objective, data, validate, config, batch_size, config.lr)
    classifier = NoisyClassifier(net, sde_obj, data.datamap, data.classes)
    classifier.history = history
    return classifier.eval()


def _check_flow_converged(model: FlowModel, data) -> None:
    """A flow whose chosen held-out NLL is not finite raises RuntimeError; one that scores
    worse than the diagonal Gaussian of the standardised rows, N(0, I), is told in one
    warning: it diverged or learned nothing, and a comparison against it would mislead."""
    chosen = next((r for r in model.history if r.get("selected")), model.history[-1])
    value = chosen.get("val_loss", math.nan)
    if not math.isfinite(value):
        raise RuntimeError(f"fit_flow ({model.kind}) diverged: its held-out NLL is {value} at "
                           "every scoring; try a smaller lr")
    held = data.held[0].double().flatten(1)
    gaussian = (0.5 * (held**2).sum(1) + 0.5 * held.shape[1] * math.log(2 * math.pi)).mean()
    gaussian = gaussian.item() - data.datamap.log_det.item()
    if value > gaussian:
        warn(f"fit_flow ({model.kind}): the chosen held-out NLL {value:.4g} nats per row is "
             f"worse than the diagonal Gaussian's {gaussian:.4g}: the flow diverged or learned "
             "nothing; a smaller lr or a longer budget may help")


def _check_adopts(model, x: torch.Tensor, sde) -> None:
    """Refuse data or an SDE that differ from the model the classifier is to guide."""
    if tuple(x.shape[1:]) != tuple(model.shape):
        raise ValueError(f"data rows have shape {tuple(x.shape[1:])}; the model's samples "
                         f"have {tuple(model.shape)}")
    if sde is not None and repr(sde_for_data(sde, x)) != repr(model.sde):
        raise ValueError(f"sde={sde!r} differs from the model's {model.sde!r}; leave sde "
                         "out to use the model's")


def _train(module, objective, data, validate, config: TrainConfig, batch_size: int,
           lr: float, initial: dict | None = None):
    """Train ``module`` on the prepared ``data`` with Adam at ``lr`` and the config's weight
    average (``initial``: as in ``train_loop``); returns (the module to evaluate, history)."""
    averaged = WeightAverage(module, config.ema) if config.ema else None
    optimizer = adam(module.parameters(), lr, config.weight_decay)
    history = train_loop(module, optimizer, objective, data.train, config,
                         batch_size=batch_size, validate=validate, averaged=averaged,
                         initial=initial)
    return (averaged.module if averaged is not None else module), history
