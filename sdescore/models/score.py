"""ScoreModel: a score function and an SDE, with exact likelihoods and samplers."""
from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np
import torch

from .._batching import CPU_BATCH_ROWS, in_batches
from .._checks import (as_labels, as_times, check_count, check_flag, check_positive, check_seed,
                       choose, warn)
from .._tensors import make_generator, seed_or_fresh
from ..bounds import nll_bound_terms
from ..datamap import DataMap
from ..io import register_format
from ..nets import NETS, net_name
from ..parameterization import PARAMETERIZATIONS, parameterization_name
from ..sde import SDE, SDES, get_sde, tweedie_denoise
from ..solvers.adapters import ForwardSDE, ReverseSDE
from ..solvers.likelihood import (LIKELIHOODS, LogDensity, probability_flow_log_prob,
                                  resolve_trace)
from ..solvers.samplers import SAMPLERS
from .base import DensityModel
from .guidance import classifier_free_guided, classifier_guided

__all__ = ["SCORE_FORMAT", "ScoreModel"]

#: The format tag a saved ScoreModel's file carries.
SCORE_FORMAT = "sdescore-model-2"
CPU_ODE_SAMPLE_ROWS = 4096
"""Rows the "ode" sampler draws together on a CPU by default (larger batches run slower
there)."""
FAR_SAMPLES = 100.0
"""Samples farther than this many training standard deviations (times the prior's scale)
from the origin of the model's coordinates are flagged: no fitted density puts mass there."""


class ScoreModel(DensityModel):
    """A score-based model: ``sde`` plus ``score_fn(x, t)`` ~ grad_x log p_t(x).

    sde: an SDE object (``sdescore.get_sde``); score_fn: a callable or nn.Module taking
    x ``(n, *shape)`` and t (n,) and returning a tensor like x; shape: the shape of one sample,
    e.g. (d,) or (c, h, w). datamap: the affine map y = (x - loc) / scale from the data's
    coordinates to the ones the score lives in (a ``DataMap``; default the identity), or
    loc and scale (tensors broadcasting to ``shape``) to build one. The public methods take
    and return data coordinates, and ``log_prob`` includes the map's log-determinant.
    ``forward_sde`` and ``reverse_sde`` act in y. classes: for a
    class-conditional score_fn(x, t, y) (``fit(..., labels=...)``), the number of classes;
    label ``classes`` means "no label". levels: see ``DensityModel``.
    Computation runs in the model's dtype and device (``.double()``, ``.to(device)``). After
    each call of ``score``, ``log_prob`` or ``sample``, ``last_score_evals`` holds the number
    of batched score evaluations that call used.

    Example: the exact score of a Gaussian mixture makes a model whose ``log_prob`` is the
    mixture's log-density up to the solver's tolerance.

        >>> import sdescore
        >>> from sdescore.oracle import random_mixture
        >>> mixture = random_mixture(2, components=3, seed=0)
        >>> sde = sdescore.get_sde("vp")
        >>> model = sdescore.ScoreModel(sde, mixture.score_fn(sde), shape=(2,))
        >>> x = mixture.sample(100, seed=1).float()
        >>> bool((model.log_prob(x).double() - mixture.log_prob(x)).abs().max() < 1e-2)
        True
        >>> model.sample(4, method="dpm", seed=0).shape
        torch.Size([4, 2])
    """

    file_format = SCORE_FORMAT

    def __init__(self, sde: SDE, score_fn: Callable, shape, *, datamap: DataMap | None = None,
                 loc=None, scale=None, classes: int | None = None, levels: int | None = None):
        if datamap is not None and (loc is not None or scale is not None):
            raise ValueError("pass either datamap or loc and scale, not both")
        if loc is not None or scale is not None:
            datamap = DataMap(0.0 if loc is None else loc, 1.0 if scale is None else scale, shape)
        super().__init__(shape, datamap, levels)
        if not isinstance(sde, SDE):
            raise TypeError(f"sde must be an SDE object (see sdescore.get_sde); "
                            f"got {type(sde).__name__}")
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable; got {type(score_fn).__name__}")
        self.sde = sde
        self.score_fn = score_fn
        self.classes = classes
        self.last_score_evals = 0
        self._score_evals = 0

    def _score(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        """The unchecked, counted score used by solvers: x ``(n, *shape)``, t (n,), labels y
        (n,) or None (unconditional)."""
        self._score_evals += 1
        score = self.score_fn(x, t) if y is None else self.score_fn(x, t, y)
        if score.shape != x.shape:  # a broadcastable shape would give finite, wrong results
            raise ValueError(f"score_fn returned shape {tuple(score.shape)} for x of shape "
                             f"{tuple(x.shape)}: it must return a tensor like x")
        return score

    def _labels(self, y, n: int):
        """Validated labels (n,) for a conditional model."""
        if self.classes is None:
            raise ValueError("y needs a class-conditional model (fit(..., labels=...)); for "
                             "an unconditional one pass classifier=... as well")
        return as_labels(y, n, name="y", classes=self.classes, device=self.device)

    def _finish(self, result):
        self.last_score_evals, self._score_evals = self._score_evals, 0
        return result

    @property
    def forward_sde(self) -> ForwardSDE:
        """The forward SDE as a torchsde module on flat (n, D) states."""
        return ForwardSDE(self.sde, self.shape)

    @property
    def reverse_sde(self) -> ReverseSDE:
        """The reverse SDE, holding this model's score, as a torchsde module in s = T - t."""
        return ReverseSDE(self.sde, self._score, self.shape)

    @torch.no_grad()
    def score(self, x, t) -> torch.Tensor:
        """grad_x log p_t(x) in data coordinates: x ``(n, *shape)``, t scalar or (n,) in [0, T]
        -> ``(n, *shape)``. With a data map y = (x - loc) / scale this is score_y(y, t) / scale.
        A score that is not finite (a network's at t = 0, where s(t) = 0) raises ValueError."""
        x = self.model_rows(x)
        t = as_times(t, x.shape[0], self.sde.T, dtype=self.dtype, device=self.device)
        self._score_evals = 0
        score_y = self._score(x, t)
        if not torch.isfinite(score_y).all():
            raise ValueError(f"the score is not finite at t = {t.min().item():g}, where the "
                             f"kernel's std is {self.sde.marginal_std(t.min()).item():g}: ask "
                             f"for t >= {self.sde.likelihood_eps:g} (sde.likelihood_eps)")
        return self._finish(self.datamap.score_to_data(score_y))

    @torch.no_grad()
    def log_prob(self, x, trace: str = "auto", *, method: str = "ode",
                 eps: float | None = None, probes: int | None = None,
                 probe: str | None = None, seed: int | None = None,
                 batch_size: int | None = None, progress: bool | None = None, y=None,
                 return_error: bool = False, **options):
        """Exact log p_eps(x) in nats by the probability-flow ODE: x ``(n, *shape)`` -> (n,).

        This is the density at t = eps (default ``sde.likelihood_eps``), the prior pushed back
        through the flow.

        Arguments:
            trace: "auto" (exact up to 64 dimensions, else Hutchinson), "exact" or
                "hutchinson"; probes (default 1) and probe ("rademacher" or "gaussian") set
                Hutchinson's probes, and are refused with an exact trace. Each row's probes
                are drawn once from ``seed`` and that row's values
                (``likelihood.row_probes``), so that with a seed a row's estimate is the same
                alone, in any batch and on any rank; seed None: fresh probes at every call.
            method: a ``solvers.likelihood.LIKELIHOODS`` name, the same integrators as
                ``sample``'s methods of those names, with its options:
                "ode": solver (default "dopri5": Dormand-Prince with a step size and an
                error control per row, so that a row's value does not depend on the rows
                beside it; torchdiffeq's adaptive dopri8, bosh3, fehlberg2, adaptive_heun
                share one step size over the batch); the adaptive solvers take rtol and
                atol (default 1e-5, per row for dopri5) and max_steps (default 5000, after
                which the solve stops with RuntimeError); the fixed-grid euler, midpoint,
                heun3, rk4 take steps (default 100).
                "dpm": the exponential integrator in log-SNR
                (``likelihood.log_snr_log_prob``), ``steps`` + 1 evaluations (default 60;
                no error control: its solver_error estimates the quadrature's error).
                An option the method does not take, or would ignore, is refused by name.
            batch_size: points per solve, which bounds memory (default: all on a GPU,
                halved while they do not fit; 2048 on a CPU, see ``sdescore._batching``);
                with dopri5 and the fixed-grid solvers it moves no result beyond float
                rounding.
            progress: a bar over the rows (default: shown when there is more than one batch).
            y: class labels (one integer or (n,)) for the conditional log p(x | y) of a
                class-conditional model.
            return_error: also return each row's error estimates.

        Returns:
            (n,) log-densities in nats; with ``return_error``, a ``LogDensity`` (log_prob,
            solver_error, trace_stderr): solver_error (n,) estimates a bound on the solver's
            error in nats (dopri5: ``likelihood.ERROR_SAFETY`` times the sum over the row's
            steps of each step's estimated error in log p, the sample's through the score,
            and of its rounding, reliable at the default tolerances and less so at looser
            ones, see the likelihood guide; for "dpm" the cubic quadrature's disagreement
            with the trapezoid rule, an estimate rather than a bound; NaN for torchdiffeq's
            solvers), trace_stderr (n,) is the standard error of Hutchinson's estimate
            over its probes (NaN with one probe; None for an exact trace).

        ``last_score_evals`` sums the batched evaluations of all batches (with dopri5 a
        batched evaluation covers only the rows still solving).
        """
        x = self.model_rows(x)
        return_error = check_flag(return_error, name="return_error")
        progress = check_flag(progress, name="progress", none=True)
        eps = self._check_eps(eps, self.sde.likelihood_eps)
        likelihood = choose(method, LIKELIHOODS, name="method")
        likelihood.check("log_prob", method, self.sde, options)
        hutchinson = resolve_trace(trace, self.dim) == "hutchinson"
        if not hutchinson and (probes is not None or probe is not None):
            raise ValueError(f"probes and probe set Hutchinson's estimator; trace={trace!r} "
                             f"is exact for {self.dim} dimensions: pass trace='hutchinson'")
        if probes is not None:
            check_positive(probes, name="probes", integer=True)
        rows = self._batch_rows(x.shape[0], batch_size)
        probe_seed = seed_or_fresh(seed) if hutchinson else check_seed(seed)  # one per call
        labels = None if y is None else self._labels(y, x.shape[0])
        self._score_evals = 0

        def solve(part):
            result = probability_flow_log_prob(
                self.sde, self._score, self.shape, x[part], trace=trace, eps=eps,
                method=method, probes=probes or 1, probe=probe or "rademacher",
                seed=probe_seed, labels=None if labels is None else labels[part],
                **options)
            stderr = (result.trace_stderr if result.trace_stderr is not None
                      else torch.full_like(result.log_prob, math.nan))
            return torch.stack([result.log_prob, result.solver_error, stderr], 1)
        log_p, solver_error, stderr = in_batches(solve, x.shape[0], rows, progress=progress,
                                                 desc="log_prob").unbind(1)
        log_p = self._finish(self.datamap.log_prob_to_data(log_p))
        if not return_error:
            return log_p
        return LogDensity(log_p, solver_error, None if not hutchinson else stderr)

    @torch.no_grad()
    def nll_bound(self, x, *, draws: int = 64, seed: int | None = None,
                  return_stderr: bool = False, batch_size: int | None = None):
        """Upper bound on -log p_theta^SDE(x) in nats: x ``(n, *shape)`` -> (n,).

        The likelihood-weighted denoising objective plus the prior term (Song, Durkan, Murray
        and Ermon 2021, Thm. 2), estimated with ``draws`` score evaluations per point: t
        importance-sampled in proportion to g^2 / s^2 on [eps, T] and stratified, z in
        antithetic pairs, and the N(0, I) score's share computed in closed form (a control
        variate). With ``return_stderr``, returns (bound, a conservative standard error),
        both (n,). batch_size: points evaluated together, as in ``log_prob``, each draw of
        each point counted (None: batches as for ``log_prob``, several draws of a batch under
        2048 points stacked up to 2048 rows). seed: each point's draws come from the seed and
        its own values, so that with a seed a point's bound is the same alone, in any batch,
        at any batch_size and on any rank (None: a fresh seed at every call).

        It bounds the reverse-SDE model's -log p, not the probability-flow ODE's that
        ``log_prob`` computes; the two coincide only for the exact score. Per point the
        estimate is noisy (its standard error comes with ``return_stderr``); averages over
        many points are tight. The part of the integral below
        eps is left out.
        """
        x = self.model_rows(x)
        check_positive(draws, name="draws", integer=True)
        return_stderr = check_flag(return_stderr, name="return_stderr")
        rows = self._batch_rows(x.shape[0], batch_size)
        draws_stacked = 1 if batch_size else max(1, CPU_BATCH_ROWS // rows)
        seed = seed_or_fresh(seed)  # one for all batches of this call
        self._score_evals = 0

        def estimate(part):
            points = x[part]
            return torch.stack(nll_bound_terms(self.sde, self._score, points, draws=draws,
                                               eps=self.sde.likelihood_eps, seed=seed,
                                               rows_per_call=len(points) * draws_stacked), 1)
        bound, stderr = in_batches(estimate, x.shape[0], rows, progress=False).unbind(1)
        bound = self._finish(bound - self.datamap.log_det)  # -log p_x = -log p_y - log|det|
        return (bound, stderr) if return_stderr else bound

    @torch.no_grad()
    def sample(self, n: int, method: str = "ode", *, eps: float | None = None,
               denoise: bool = True, seed: int | None = None, progress: bool | None = None,
               y=None, classifier=None, guidance_scale: float = 1.0,
               batch_size: int | None = None, **options) -> torch.Tensor:
        """Draw n samples ``(n, *shape)``.

        method: "ode" (probability-flow ODE; options solver, rtol, atol, steps, max_steps as
        for ``log_prob``), "sde" (reverse SDE with torchsde; solver "euler" or "milstein",
        steps), "pc" (predictor-corrector; steps, snr, corrector_steps), "langevin" (annealed
        Langevin; noise_levels, steps_per_level, snr), "dpm"
        (DPM-Solver++ in log-SNR, one evaluation per step; steps=20, order=3, spacing) or,
        for VP models, "ddpm" (DDPM ancestral sampling; steps, whose last step denoises).
        eps: the last time (default ``sde.sampling_eps``); denoise: finish with Tweedie's
        E[x_0 | x_eps]; seed: makes the draw repeatable. batch_size: samples drawn together,
        which bounds memory (default: as many as hold ``2**22`` numbers, e.g. 2,097,152 2-D points
        or 5,349 28 x 28 images, and at most CPU_ODE_SAMPLE_ROWS for "ode" on a CPU; a
        batch that runs out of GPU memory is halved); the draws of a seed depend on it only
        when n exceeds it. n samples that would not fit in
        memory are refused (ValueError) before any work. progress: None (default) a bar
        over the batches when there is more than one; True also the sampler's own bar over
        its steps; False none.
        y: class labels (one integer or (n,)) to sample p(x | y). With ``classifier`` (a
        ``NoisyClassifier`` or any callable log_q(y, x, t) -> (n,) on data coordinates) the
        score becomes score + guidance_scale * grad_x log q(y | x_t, t) (classifier
        guidance); without one the model must be class-conditional, and the score is
        uncond + guidance_scale * (cond - uncond) (classifier-free guidance).
        guidance_scale = 1 targets p(x | y); larger values sharpen it (without y, a value other
        than 1 is refused).
        """
        n = check_count(n)
        denoise = check_flag(denoise, name="denoise")
        progress = check_flag(progress, name="progress", none=True)
        self._check_weights()
        sampler = choose(method, SAMPLERS, name="method")
        sampler.check("sample", method, self.sde, options)
        eps = self._check_eps(eps, self.sde.sampling_eps)
        size = self._sample_rows(n, batch_size)
        if batch_size is None and method == "ode" and self.device.type == "cpu":
            size = min(size, CPU_ODE_SAMPLE_ROWS)
        labels = self._guidance_labels(n, y, classifier, guidance_scale)
        generator = make_generator(seed, self.device)
        self._score_evals = 0

        def draw(rows):
            x = self.sde.prior_sample((rows.stop - rows.start,) + self.shape,
                                      generator=generator, device=self.device, dtype=self.dtype)
            if rows.stop > rows.start:
                score = self._guided(None if labels is None else labels[rows], classifier,
                                     guidance_scale)
                x = self._run(sampler, score, x, eps=eps, generator=generator,
                              progress=bool(progress), denoise=denoise, **options)
            return self.datamap.to_data(x)
        return self._finish(in_batches(draw, n, size, progress=progress, desc="sample"))

    def _run(self, sampler, score, x, *, eps, generator, progress, denoise, **options):
        """Carry x ``(n, *shape)`` in model coordinates from T to eps with ``sampler``, then
        Tweedie's denoising step unless the sampler ends with its own or ``denoise`` is off;
        with a ``mask`` option, only the masked entries move or are denoised."""
        x = sampler.run(self.sde, score, x, eps=eps, generator=generator, progress=progress,
                        **options)
        if denoise and not sampler.denoises:
            t = torch.full((x.shape[0],), eps, dtype=x.dtype, device=x.device)
            denoised = tweedie_denoise(self.sde, score, x, t)
            mask = options.get("mask")
            x = denoised if mask is None else torch.where(mask, denoised, x)
        shown = {k: v for k, v in options.items() if k != "mask"}
        if not torch.isfinite(x).all():
            raise RuntimeError(f"sampling diverged to NaN or inf (options {shown}): a smaller "
                               "snr, more steps or noise_levels, or a smaller guidance_scale keeps "
                               "its steps stable")
        reach = FAR_SAMPLES * max(1.0, self.sde.prior_std)
        far = x.flatten(1).abs().amax(1) > reach
        if far.any():
            warn(f"{int(far.sum())} of {x.shape[0]} samples lie beyond {reach:g} "
                 f"training standard deviations (largest {x.abs().max().item():.3g}): "
                 f"the sampler probably diverged (options {shown}); a smaller snr or "
                 "guidance_scale, or more steps, keeps it stable")
        return x

    def _guidance_labels(self, n: int, y, classifier, guidance_scale):
        """The sample's labels (n,) checked against the model or the classifier, and the
        guidance options checked; None without y."""
        if y is None:
            if classifier is not None:
                raise ValueError("classifier needs labels: pass y=...")
            if not (isinstance(guidance_scale, numbers.Real) and guidance_scale == 1.0):
                raise ValueError(f"guidance_scale={guidance_scale!r} needs labels to guide "
                                 "towards: pass y=...")
            return None
        if (isinstance(guidance_scale, bool) or not isinstance(guidance_scale, numbers.Real)
                or not math.isfinite(guidance_scale) or guidance_scale < 0):
            raise ValueError(f"guidance_scale must be a finite number >= 0; got {guidance_scale!r}")
        if classifier is None:
            return self._labels(y, n)
        if not callable(classifier):
            raise TypeError(f"classifier must be a NoisyClassifier or a callable log_q(y, x, "
                            f"t); got {type(classifier).__name__}")
        check_guides = getattr(classifier, "check_guides", None)  # a NoisyClassifier's
        if check_guides is not None:
            check_guides(self.sde, self.datamap)
        return as_labels(y, n, name="y", classes=getattr(classifier, "classes", None),
                         device=self.device)

    def _guided(self, labels, classifier, guidance_scale):
        """The score the samplers follow for rows with ``labels`` (checked by
        ``_guidance_labels``): plain, classifier-guided or classifier-free guided."""
        if labels is None:
            return self._score
        if classifier is None:
            return classifier_free_guided(self._score, labels, self.classes, float(guidance_scale))
        return classifier_guided(self._score, classifier, labels, float(guidance_scale),
                                 self.datamap.to_data)

    @torch.no_grad()
    def impute(self, x, draws: int | None = None, *, eps: float | None = None,
               noise_levels: int = 100, steps_per_level: int = 20, snr: float = 0.4,
               seed: int | None = None, progress: bool = False) -> torch.Tensor:
        """Fill the NaN entries of x ``(n, *shape)`` with draws from the model's conditional
        p(missing | observed), row by row.

        Annealed Langevin dynamics (``noise_levels`` noise levels from T to eps, default
        ``sde.sampling_eps``, ``steps_per_level`` steps at signal-to-noise ratio ``snr``)
        moves only the missing entries, which start from the prior and end with Tweedie's
        denoising step; the observed ones are returned unchanged.
        draws: None -> ``(n, *shape)``; an integer k -> ``(k, n, *shape)``, k independent fills.
        """
        if not isinstance(x, torch.Tensor):
            array = np.asarray(x)
            if array.dtype.kind not in "iuf":
                raise TypeError(f"x must hold real numbers; got dtype {array.dtype}")
            x = torch.from_numpy(np.ascontiguousarray(array))
        missing = torch.isnan(x) if x.is_floating_point() else torch.zeros_like(x, dtype=torch.bool)
        x = self.checked_rows(torch.where(missing, torch.zeros_like(x), x))
        self.within_reach(x)
        missing = missing.to(self.device)
        copies = 1 if draws is None else check_positive(draws, name="draws", integer=True)
        for value, name in ((noise_levels, "noise_levels"),
                            (steps_per_level, "steps_per_level")):
            check_positive(value, name=name, integer=True)
        check_positive(snr, name="snr")
        progress = check_flag(progress, name="progress")
        eps = self._check_eps(eps, self.sde.sampling_eps)
        generator = make_generator(seed, self.device)
        self._score_evals = 0
        rows = x.repeat(copies, *[1] * len(self.shape))  # (copies * n, *shape)
        holes = missing.repeat(copies, *[1] * len(self.shape))
        start = self.sde.prior_sample(rows.shape, generator=generator, device=self.device,
                                      dtype=self.dtype)
        filled = self._run(SAMPLERS["langevin"], self._score,
                           torch.where(holes, start, self.datamap.to_model(rows, self.dtype)),
                           eps=eps,
                           generator=generator, progress=progress, denoise=True, mask=holes,
                           noise_levels=noise_levels, steps_per_level=steps_per_level,
                           snr=snr)
        filled = torch.where(holes, self.datamap.to_data(filled), rows).to(
            self.datamap.output_dtype(self.dtype))
        return self._finish(filled if draws is None else filled.reshape(copies, *x.shape))

    def _check_eps(self, eps, default):
        if eps is None:
            return default
        check_positive(eps, name="eps")
        if eps >= self.sde.T:
            raise ValueError(f"eps must be below T = {self.sde.T}; got {eps}")
        return float(eps)

    def config(self) -> dict:
        """What ``load`` needs to rebuild this model: SDE, shape, network, parameterisation
        and data map.

        Only models whose score_fn is one of ``parameterization.PARAMETERIZATIONS`` over a
        network from ``sdescore.nets`` can be described; others raise TypeError.
        """
        sde_class = type(self.sde)
        if SDES.get(self.sde.name) is not sde_class:
            raise TypeError(
                f"Cannot save a ScoreModel whose SDE is a {sde_class.__name__}: load rebuilds "
                f"an SDE from its name in sdescore.sde.SDES ({', '.join(SDES)}), and "
                f"{self.sde.name!r} does not name {sde_class.__name__}. Give the class a name of "
                f"its own (name = 'mysde') and register it, also where the file is loaded: "
                f"sdescore.sde.SDES['mysde'] = {sde_class.__name__}")
        kind = parameterization_name(self.score_fn)
        if kind is None:
            raise TypeError(
                f"Cannot save a ScoreModel whose score_fn is a {type(self.score_fn).__name__}: "
                f"only {', '.join(c.__name__ for c in PARAMETERIZATIONS.values())} over a "
                "network from sdescore.nets can be rebuilt on load")
        net = self.score_fn.net
        return {"sde": {"name": self.sde.name, "params": self.sde.params()},
                "shape": list(self.shape), "parameterization": kind,
                "parameterization_config": dict(self.score_fn.config),
                "net": {"name": net_name(net), "config": dict(net.config)},
                "datamap": self.datamap.config(), "levels": self.levels}

    @classmethod
    def from_config(cls, config: dict) -> "ScoreModel":
        """An untrained model with the SDE, shape, network and data map that ``config()``
        describes."""
        sde = get_sde(config["sde"]["name"], **config["sde"]["params"])
        net_config = dict(config["net"]["config"])
        # files from before the time embedding's options: its old highest frequency
        if config["net"]["name"] in ("mlp", "unet"):
            net_config = {"max_frequency": 1000.0, "time_input": "linear", **net_config}
        net = NETS[config["net"]["name"]](**net_config)
        kind = config["parameterization"]
        # files from before the clip was an option: the residual's clip was 5
        options = config.get("parameterization_config",
                             {"input_clip": 5.0} if kind == "residual" else {})
        score_fn = PARAMETERIZATIONS[kind](net, sde, **options)
        shape = tuple(config["shape"])
        return cls(sde, score_fn, shape, datamap=DataMap.from_config(config["datamap"], shape),
                   classes=config["net"]["config"].get("classes"), levels=config.get("levels"))


register_format(SCORE_FORMAT, ScoreModel.from_config)
register_format("sdescore-model-1", ScoreModel.from_config, map_in_weights=True)
