"""Parameterisations: the score and the training target of each, and the default's Gaussian
fallback plus the network's bounded correction."""
import functools
import math

import pytest
import torch

import sdescore
from sdescore.training.reference import LEARNING_SHRINKAGE
from sdescore.datasets import GaussianMixture
from sdescore.ddpm import score_to_noise
from sdescore.nets import MLPScoreNet
from sdescore.parameterization import PARAMETERIZATIONS, GaussianResidual, NoisePrediction

from conftest import make_sde


def _standard_normal(dim):
    return GaussianMixture(torch.zeros(1, dim), torch.ones(1, dim))


class _InputRecorder(torch.nn.Module):
    """A network that keeps every input it sees (in ``seen``) and outputs zeros."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, t):
        self.seen.append(x)
        return torch.zeros_like(x)


def _silent_net(dim):
    """An MLP whose output is exactly zero: its last layer is zeroed."""
    net = MLPScoreNet(dim, hidden=16).double()
    torch.nn.init.zeros_(net.out[1].weight)
    torch.nn.init.zeros_(net.out[1].bias)
    return net


@pytest.mark.parametrize("name", ["ve", "vp", "subvp"])
def test_without_a_correction_the_score_is_the_exact_score_of_standard_normal_data(name):
    sde = make_sde(name)
    score = GaussianResidual(_silent_net(3), sde)
    gen = torch.Generator().manual_seed(0)
    x = 4 * torch.randn(50, 3, dtype=torch.float64, generator=gen)
    t = torch.rand(50, dtype=torch.float64, generator=gen) * (sde.T - 1e-4) + 1e-4
    truth = _standard_normal(3).marginal_score(x, t, sde)
    torch.testing.assert_close(score(x, t), truth, rtol=1e-10, atol=1e-10)
    # N(0, I) data: the flow scales x_eps by sqrt(v_T / v_eps), v = m^2 + s^2, so the model's
    # log p_eps is the prior's at the scaled point plus (D / 2) log(v_T / v_eps)
    model = sdescore.ScoreModel(sde, score, (3,)).double()
    points = torch.randn(20, 3, dtype=torch.float64, generator=gen)
    ends = torch.tensor([sde.likelihood_eps, sde.T], dtype=torch.float64)
    v_eps, v_T = sde.mean_scale(ends) ** 2 + sde.marginal_std(ends) ** 2
    exact = sde.prior_log_prob(points * (v_T / v_eps).sqrt()) + 1.5 * (v_T / v_eps).log()
    assert (model.log_prob(points) - exact).abs().max() < 5e-4  # the solver's 1e-5 tolerances


def _matrix_power(matrix, power):
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values**power) @ vectors.T


@pytest.mark.parametrize("name", ["ve", "vp", "subvp"])
def test_with_a_covariance_and_no_correction_the_score_is_that_gaussians_exact_score(name):
    """N(0, Sigma) data: p_t = N(0, C_t), C_t = m^2 Sigma + s^2 I, whose score -C_t^-1 x is
    the model's when the network is silent; the flow then maps x_eps to
    C_T^1/2 C_eps^-1/2 x_eps, so log p_eps is the prior's there plus that map's log-det."""
    sde = make_sde(name)
    gen = torch.Generator().manual_seed(0)
    mixing = torch.randn(3, 3, dtype=torch.float64, generator=gen)
    sigma = mixing @ mixing.T + 0.05 * torch.eye(3, dtype=torch.float64)
    law = sdescore.oracle.GaussianMixture([[0.0, 0.0, 0.0]], [sigma.tolist()])
    score = GaussianResidual(_silent_net(3), sde, covariance=sigma)
    x = 4 * torch.randn(50, 3, dtype=torch.float64, generator=gen)
    t = torch.rand(50, dtype=torch.float64, generator=gen) * (sde.T - 1e-4) + 1e-4
    torch.testing.assert_close(score(x, t), law.marginal_score(x, t, sde), rtol=1e-9, atol=1e-9)
    model = sdescore.ScoreModel(sde, score, (3,)).double()
    points = torch.randn(20, 3, dtype=torch.float64, generator=gen)
    c_eps, c_T = (law.marginal(sde, time).covs[0] for time in (sde.likelihood_eps, sde.T))
    flow_map = _matrix_power(c_T, 0.5) @ _matrix_power(c_eps, -0.5)
    exact = sde.prior_log_prob(points @ flow_map.T) + torch.logdet(flow_map)
    assert (model.log_prob(points, rtol=1e-8, atol=1e-8) - exact).abs().max() < 1e-5


def test_a_covariance_must_be_symmetric_positive_definite():
    sde = make_sde("vp")
    for bad, problem in [(torch.ones(2, 3), "square"), (torch.tensor([[1.0, 0.5], [0.0, 1.0]]),
                         "symmetric"), (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "positive"),
                         (torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]), "NaN")]:
        with pytest.raises(ValueError, match=problem):
            GaussianResidual(_silent_net(2), sde, covariance=bad)


def test_fit_gives_vectors_their_fitted_gaussian(tmp_path):
    """The network's reference in a fit on vectors: the standardised rows' covariance shrunk
    toward its diagonal by the cross-validated amount, at least LEARNING_SHRINKAGE
    (``training.reference``), with the departure under the "snr" envelope, both saved with
    the model; images keep N(0, I) and the departure unscaled."""
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(400, 2, generator=gen) @ torch.tensor([[3.0, 2.9], [0.0, 0.5]]) + 7
    model = sdescore.fit(data, steps=5, validation=0, seed=0, progress=False)
    correlation = torch.corrcoef(data.double().T)
    covariance = torch.as_tensor(model.score_fn.config["covariance"], dtype=torch.float64)
    torch.testing.assert_close(torch.diagonal(covariance), torch.ones(2, dtype=torch.float64),
                               rtol=0, atol=1e-5)  # unit variances and the 1e-6 ridge
    shrinkage = 1 - covariance[0, 1] / correlation[0, 1]  # off the diagonal: (1 - a) rho
    # 400 rows of a 0.99-correlated pair: the best Gaussian is nearly the sample covariance,
    # and the network departs from the one shrunk LEARNING_SHRINKAGE of the way
    assert abs(shrinkage - LEARNING_SHRINKAGE) < 1e-5
    model.save(tmp_path / "model.sdes")
    loaded = sdescore.load(tmp_path / "model.sdes")
    assert model.score_fn.envelope == loaded.score_fn.envelope == "snr"
    torch.testing.assert_close(loaded.log_prob(data[:5]), model.log_prob(data[:5]), rtol=0, atol=0)
    images = sdescore.fit(torch.rand(8, 1, 4, 4), steps=2, validation=0, seed=0, progress=False)
    assert "covariance" not in images.score_fn.config
    assert images.score_fn.envelope == "none"


def test_far_from_the_data_the_log_density_is_the_gaussians():
    """A random network's term is bounded (its input saturates): it moves x_T by O(1), so
    the model's NLL is N(0, I)'s plus O(|x|), and the relative gap falls like 1 / |x|.
    Read as the whole noise, the same network's output grows with x instead."""
    torch.manual_seed(0)
    sde = make_sde("subvp")
    net = MLPScoreNet(2, hidden=32).double()
    x = torch.tensor([[1e3, -1e3], [-2e3, 5e2]], dtype=torch.float64)
    t = torch.full((2,), 0.5, dtype=torch.float64)
    residual = GaussianResidual(net, sde)
    std = sde.marginal_std(t)
    # the network's part of the noise stops changing once its input saturates
    departure = lambda y: score_to_noise(  # noqa: E731
        residual(y, t) - _standard_normal(2).marginal_score(y, t, sde), std)
    torch.testing.assert_close(departure(x), departure(10 * x), rtol=1e-6, atol=1e-6)
    model = sdescore.ScoreModel(sde, residual, (2,)).double()
    gaps = [((model.log_prob(scale * x) - _standard_normal(2).log_prob(scale * x)).abs()
             / _standard_normal(2).log_prob(scale * x).abs()).max() for scale in (1, 10)]
    assert gaps[0] < 0.05 and gaps[1] < 0.2 * gaps[0], gaps
    raw = score_to_noise(NoisePrediction(net, sde)(x, t), std)
    assert raw.abs().max() > 10 * departure(x).abs().max()


def test_fit_uses_the_residual_parameterisation_and_saves_it(tmp_path):
    data = torch.randn(300, 2) * torch.tensor([2.0, 0.5]) + 3
    model = sdescore.fit(data, steps=20, seed=0, progress=False)
    assert isinstance(model.score_fn, GaussianResidual)
    model.save(tmp_path / "model.sdes")
    loaded = sdescore.load(tmp_path / "model.sdes")
    assert isinstance(loaded.score_fn, GaussianResidual)
    assert loaded.score_fn.input_clip == model.score_fn.input_clip == 3.0
    x = data[:5]
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x), rtol=0, atol=0)
    assert math.isfinite(model.log_prob(torch.tensor([[1e4, -1e4]])).item())


def test_the_network_sees_its_input_clipped_to_input_clip_standard_deviations():
    """clip(x) = c tanh(x / (c sqrt(m^2 + s^2))): the identity near 0, c at infinity."""
    recorder = _InputRecorder()
    sde = make_sde("vp")
    t = torch.tensor([0.3, 0.3], dtype=torch.float64)
    total_std = (sde.mean_scale(t[:1]) ** 2 + sde.marginal_std(t[:1]) ** 2).sqrt()
    x = torch.tensor([[1e-4, 1e6], [-1e6, 2.0]], dtype=torch.float64) * total_std
    for clip in (3.0, 5.0):
        GaussianResidual(recorder, sde, input_clip=clip)(x, t)
        expected = torch.tensor([[1e-4, clip], [-clip, clip * math.tanh(2.0 / clip)]],
                                dtype=torch.float64)
        torch.testing.assert_close(recorder.seen[-1], expected, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="input_clip"):
        GaussianResidual(recorder, sde, input_clip=0.0)


def test_with_a_covariance_the_network_sees_its_input_whitened_by_c_t():
    """clip(C_t^-1/2 x): unit scale in every direction of N(0, Sigma)'s p_t, then the tanh;
    inputs that are not (n, d) vectors are refused, not rotated along another axis."""
    recorder = _InputRecorder()
    sde = make_sde("subvp")
    sigma = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    t = torch.tensor([0.05, 0.05], dtype=torch.float64)
    m, s = sde.mean_scale(t[:1]).item(), sde.marginal_std(t[:1]).item()
    inverse_root = _matrix_power(m**2 * sigma + s**2 * torch.eye(2, dtype=torch.float64), -0.5)
    x = torch.tensor([[0.3, -0.2], [4.0, 4.5]], dtype=torch.float64)
    residual = GaussianResidual(recorder, sde, covariance=sigma)
    residual(x, t)
    torch.testing.assert_close(recorder.seen[-1], 3 * torch.tanh(x @ inverse_root / 3),
                               rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match=r"x must be \(n, 2\) vectors"):
        residual(torch.zeros(2, 1, 2, 2, dtype=torch.float64), t)


def test_fit_takes_a_parameterisation_with_another_clip_and_saves_it(tmp_path):
    wrap = functools.partial(GaussianResidual, input_clip=5.0)
    model = sdescore.fit(torch.randn(200, 2), parameterization=wrap, steps=5, seed=0,
                         progress=False)
    model.save(tmp_path / "model.sdes")
    assert sdescore.load(tmp_path / "model.sdes").score_fn.input_clip == 5.0


def test_files_saved_before_the_clip_was_an_option_load_with_clip_five(tmp_path):
    model = sdescore.fit(torch.randn(200, 2), steps=5, seed=0, progress=False)
    path = tmp_path / "model.sdes"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    assert payload["config"].pop("parameterization_config")["input_clip"] == 3.0
    torch.save(payload, path)
    assert sdescore.load(path).score_fn.input_clip == 5.0


@pytest.mark.parametrize("kind, options", [(kind, {}) for kind in PARAMETERIZATIONS]
                         + [("residual", {"envelope": "snr"})])
def test_each_target_is_the_output_that_gives_the_kernels_score(kind, options):
    """denoising_residual, the output's distance from its training target, is s(t) score + z
    for the parameterisation's own score: zero exactly when the score is the kernel's -z / s.
    So denoising score matching on the target and on the score are one loss."""
    sde = make_sde("subvp")
    gen = torch.Generator().manual_seed(1)
    score = PARAMETERIZATIONS[kind](MLPScoreNet(3, hidden=16).double(), sde, **options)
    x0 = torch.randn(40, 3, dtype=torch.float64, generator=gen)
    noise = torch.randn(40, 3, dtype=torch.float64, generator=gen)
    t = torch.rand(40, dtype=torch.float64, generator=gen) * 0.99 + 0.01
    x_t = sde.perturb(x0, t, noise)
    std = sde.marginal_std(t)[:, None]
    torch.testing.assert_close(score.denoising_residual(x_t, t, noise),
                               std * score(x_t, t) + noise, rtol=1e-9, atol=1e-9)
    loss = sdescore.losses.DenoisingScoreMatching(sde)
    through_score = lambda x, t: score(x, t)  # noqa: E731  (a plain callable: no target)
    torch.testing.assert_close(loss(score, x0, t=t, generator=torch.Generator().manual_seed(2)),
                               loss(through_score, x0, t=t,
                                    generator=torch.Generator().manual_seed(2)))


class _Ones(torch.nn.Module):
    """A network whose output is 1 everywhere: under an envelope, the departure is the
    envelope itself."""

    def forward(self, x, t):
        return torch.ones_like(x)


@pytest.mark.parametrize("name", ["ve", "vp", "subvp"])
def test_the_snr_envelope_shrinks_no_faster_than_a_real_departure(name):
    """The exact departure of a standardised non-Gaussian table (an asymmetric mixture, mean
    0 and unit variance per column) from its Gaussian vanishes where x_t is noise at least
    as fast as m^2 / (m^2 + s^2): the network's target under the envelope, departure /
    envelope, stays within the departure's own peak at every t, and where the envelope is
    small the network is spared most of the departure's fall."""
    sde = make_sde(name)
    means = torch.tensor([[1.2, 0.3], [-0.4, -0.1]], dtype=torch.float64)
    weights = torch.tensor([0.25, 0.75], dtype=torch.float64)
    centre = (weights[:, None] * means).sum(0)
    spread = (weights[:, None] * (means - centre) ** 2).sum(0)
    mixture = GaussianMixture(means - centre, (1 - spread).expand(2, 2).clone(), weights)
    x0 = mixture.sample(2000, seed=0).double()
    gen = torch.Generator().manual_seed(3)
    gaussian = GaussianResidual(_silent_net(2), sde)
    ones = GaussianResidual(_Ones(), sde, envelope="snr")
    peaks, targets, envelopes = [], [], []
    for t_value in torch.linspace(1e-3, sde.T, 25).tolist():
        t = torch.full((len(x0),), t_value, dtype=torch.float64)
        x_t = sde.perturb(x0, t, torch.randn(x0.shape, dtype=torch.float64, generator=gen))
        gaussian_noise = score_to_noise(gaussian(x_t, t), sde.marginal_std(t))
        envelope = score_to_noise(ones(x_t, t), sde.marginal_std(t)) - gaussian_noise
        m, s = sde.mean_scale(t)[:, None], sde.marginal_std(t)[:, None]
        torch.testing.assert_close(envelope, (m**2 / (m**2 + s**2)).expand_as(x_t))
        departure = score_to_noise(mixture.marginal_score(x_t, t, sde),
                                   sde.marginal_std(t)) - gaussian_noise
        peaks.append(departure.abs().max().item())
        targets.append((departure / envelope).abs().max().item())
        envelopes.append(envelope[0, 0].item())
    assert max(targets) <= 2 * max(peaks), (targets, peaks)
    small = [i for i, e in enumerate(envelopes) if e < 1e-2]
    assert small and all(targets[i] > 10 * peaks[i] for i in small)


def test_the_envelope_is_saved_and_files_without_it_load_without_it(tmp_path):
    wrap = functools.partial(GaussianResidual, envelope="snr")
    data = torch.randn(200, 2) * torch.tensor([2.0, 0.5])
    model = sdescore.fit(data, parameterization=wrap, steps=20, seed=0, progress=False)
    path = tmp_path / "model.sdes"
    model.save(path)
    loaded = sdescore.load(path)
    assert loaded.score_fn.envelope == "snr"
    x = torch.randn(5, 2)
    torch.testing.assert_close(loaded.log_prob(x, progress=False),
                               model.log_prob(x, progress=False))
    payload = torch.load(path, weights_only=True)
    del payload["config"]["parameterization_config"]["envelope"]  # a file from before
    torch.save(payload, path)
    assert sdescore.load(path).score_fn.envelope == "none"


@pytest.mark.parametrize("bad", ["SNR", None, 1.0])
def test_an_unknown_envelope_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="envelope"):
        GaussianResidual(_silent_net(2), make_sde("vp"), envelope=bad)
