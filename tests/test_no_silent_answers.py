"""No silent wrong answers (issue 15): fresh randomness without a seed, saved SDEs restored
exactly or refused, sampler options and score shapes checked at the door."""
import math

import numpy as np
import pytest
import torch

import sdescore
from sdescore.baselines import fit_flow
from sdescore.sde import SDES

X = np.random.default_rng(0).normal(size=(300, 2)) * [2.0, 0.5] + [1.0, -3.0]


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_seed_none_gives_fresh_randomness_and_a_seed_repeats():
    """seed=None draws from torch's global generator, which moves on: two fits, two flows'
    samples, two classifiers differ. The same seed gives the same result."""
    fits = [sdescore.fit(X, steps=5, progress=False) for _ in range(2)]
    assert not torch.equal(_weights(fits[0]), _weights(fits[1]))
    flow = fit_flow(X, "realnvp", steps=5, hidden=8, layers=2, progress=False)
    assert not torch.equal(flow.sample(5), flow.sample(5))
    torch.testing.assert_close(flow.sample(5, seed=np.int64(3)), flow.sample(5, seed=3))
    labels = (X[:, 0] > 1).astype(int)
    classifiers = [sdescore.fit_classifier(X, labels, steps=2, progress=False) for _ in range(2)]
    assert not torch.equal(_weights(classifiers[0]), _weights(classifiers[1]))


@pytest.mark.parametrize("seed, error, message", [
    (1.5, TypeError, "seed must be an integer or None; got float 1.5"),
    (True, TypeError, "seed must be an integer or None; got bool"),
    (2**70, ValueError, r"seed must be in \[0, 2\*\*63 - 1\]"),
    (-1, ValueError, r"seed must be in \[0, 2\*\*63 - 1\]"),
])
def test_a_seed_that_is_not_an_integer_in_range_is_refused(seed, error, message):
    with pytest.raises(error, match=message):
        sdescore.fit(X, steps=1, seed=seed, progress=False)
    model = sdescore.ScoreModel(sdescore.get_sde("vp"), lambda x, t: -x, (2,))
    with pytest.raises(error, match=message):
        model.sample(3, seed=seed)


class LateStartVP(sdescore.VPSDE):
    """A VP SDE whose likelihood starts at t = 1e-3: log_prob gives log p_0.001."""

    likelihood_eps = 1e-3


def test_a_subclassed_sde_is_refused_on_save_until_registered(tmp_path, monkeypatch):
    """Saved by name alone, the subclass would come back as VPSDE and log_prob would move;
    save refuses and says how to register it, and once registered it comes back exactly."""
    model = sdescore.fit(X, LateStartVP(), steps=5, seed=0, progress=False)
    target = tmp_path / "model.pt"
    with pytest.raises(TypeError, match=r"LateStartVP.*sdescore.sde.SDES\['mysde'\]"):
        model.save(target)
    assert not target.exists()
    monkeypatch.setattr(LateStartVP, "name", "latestartvp")
    monkeypatch.setitem(SDES, "latestartvp", LateStartVP)
    model.save(target)
    loaded = sdescore.load(target)
    assert type(loaded.sde) is LateStartVP
    fixed = {"solver": "rk4", "steps": 20}
    torch.testing.assert_close(loaded.log_prob(X[:5], **fixed), model.log_prob(X[:5], **fixed),
                               rtol=0, atol=0)


@pytest.fixture(scope="module")
def exact_vp():
    gaussian = sdescore.datasets.GaussianMixture([[0.0, 0.0]], [[1.0, 1.0]])
    sde = sdescore.get_sde("vp")
    return sdescore.ScoreModel(sde, gaussian.score_fn(sde), (2,))


@pytest.mark.parametrize("method, options, error, message", [
    ("sde", {"steps": -5}, ValueError, "steps must be > 0; got -5"),  # looped forever
    ("sde", {"steps": 0}, ValueError, "steps must be > 0; got 0"),  # ZeroDivisionError
    ("ode", {"solver": "euler", "steps": -1}, ValueError, "steps must be > 0"),  # IndexError
    ("ode", {"rtol": -1.0}, ValueError, "rtol must be > 0"),  # was accepted
    ("pc", {"steps": 2.5}, TypeError, "steps must be an integer; got float"),
    ("pc", {"steps": 0}, ValueError, "steps must be > 0"),  # returned prior noise
    ("pc", {"corrector_steps": -1}, ValueError, "corrector_steps must be >= 0"),
    ("langevin", {"snr": -1.0}, ValueError, "snr must be > 0; got -1.0"),  # was read as +1
    ("langevin", {"snr": math.nan}, ValueError, "snr must be a finite number > 0; got nan"),
    ("langevin", {"noise_levels": 0}, ValueError, "noise_levels must be > 0"),  # returned prior noise
    ("ddpm", {"steps": 0}, ValueError, "steps must be > 0"),
    ("dpm", {"steps": 0}, ValueError, "steps must be > 0"),
    ("dpm", {"order": 4}, ValueError, "order must be the integer 1, 2 or 3; got 4"),
    ("dpm", {"order": True}, ValueError, "order must be the integer 1, 2 or 3; got True"),
    ("dpm", {"order": 2.0}, ValueError, "order must be the integer 1, 2 or 3; got 2.0"),
    ("dpm", {"spacing": "cosine"}, ValueError, "Unknown spacing 'cosine'; choose one of: "
                                               "log-snr, time, quadratic"),
    ("sde", {"solver": 3}, TypeError, "solver must be a name"),
    ("sde", {"solver": "srk"}, ValueError, "Unknown solver 'srk'; choose one of: euler, "
                                           "milstein"),  # torchsde's Levy-area error
    ("ode", {"steps": 10}, ValueError, "steps does nothing for the adaptive solver 'dopri5'"),
    ("ode", {"solver": "rk4", "rtol": 1e-3}, ValueError,
     "rtol does nothing for the fixed-grid solver 'rk4'"),
    ("ode", {"solver": "rk45"}, ValueError, "Unknown solver 'rk45'; choose one of: dopri5"),
    ("ode", {"snr": 0.1}, TypeError, "unexpected keyword argument 'snr' for method 'ode'; "
                                     "its options are: solver, rtol, atol, steps"),
])
def test_every_sampler_option_is_checked_at_the_door(exact_vp, method, options, error, message):
    with pytest.raises(error, match=message):
        exact_vp.sample(4, method, **options)


@pytest.mark.parametrize("method, options, error, message", [
    ("dpm", {"rtol": 1e-9}, TypeError, "unexpected keyword argument 'rtol' for method 'dpm'"),
    ("ode", {"solver": "euler", "probes": 3}, ValueError, "probes and probe set Hutchinson"),
    ("ode", {"solver": "euler", "rtol": 1e-3}, ValueError, "rtol does nothing"),
    ("ode", {"solver": "dpm"}, ValueError, "'dpm' is a method, not an ODE solver: pass "
                                          "method='dpm'"),
    ("ode", {"solver": "rk45"}, ValueError, "Unknown solver 'rk45'; choose one of: dopri5, "
                                            "dopri8, bosh3, fehlberg2, adaptive_heun, euler"),
    ("ode", {"snr": 0.1}, TypeError, "unexpected keyword argument 'snr' for method 'ode'"),
    ("rk4", {}, ValueError, "Unknown method 'rk4'; choose one of: ode, dpm"),
])
def test_every_log_prob_option_is_checked_and_none_is_ignored(exact_vp, method, options, error,
                                                              message):
    """The likelihood methods declare their options as the samplers do: an option a method
    does not take, or would ignore (dpm has no tolerance; an exact trace has no probes), is
    refused by name before any solve."""
    with pytest.raises(error, match=message):
        exact_vp.log_prob(torch.zeros(3, 2), method=method, **options)


def test_a_score_of_the_wrong_shape_is_refused_not_broadcast():
    """A (n, 1) score for (2,) samples broadcasts into finite, wrong densities unless
    refused."""
    model = sdescore.ScoreModel(sdescore.get_sde("vp"), lambda x, t: -x[:, :1], (2,))
    with pytest.raises(ValueError, match=r"score_fn returned shape \(3, 1\) for x of shape "
                                         r"\(3, 2\)"):
        model.log_prob(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="score_fn returned shape"):
        model.sample(3, "sde", steps=5)


def test_fit_refuses_an_eps_past_T_and_guidance_takes_numpy_numbers(exact_vp):
    with pytest.raises(ValueError, match="eps must be below T = 1.0"):
        sdescore.fit(X, eps=2.0, steps=1, progress=False)
    log_q = lambda y, x, t: -((x[:, 0] - 2.0 * y) ** 2)  # noqa: E731  (any callable log_q)
    samples = exact_vp.sample(4, y=1, classifier=log_q, guidance_scale=np.float32(2.0),
                              method="sde", steps=5, seed=0)
    torch.testing.assert_close(samples, exact_vp.sample(4, y=1, classifier=log_q,
                                                        guidance_scale=2.0, method="sde",
                                                        steps=5, seed=0))


def test_ctrl_c_keeps_the_model_trained_so_far():
    """A KeyboardInterrupt at step 4 stops training with a warning; fit returns the three
    steps' model, its history marked as interrupted."""
    calls = {"n": 0}
    loss = sdescore.losses.DenoisingScoreMatching(sdescore.get_sde("subvp"))

    def interrupted_at_step_four(score_fn, x0, generator=None, y=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return loss(score_fn, x0, generator=generator)

    with pytest.warns(UserWarning, match="training interrupted at step 3"):
        model = sdescore.fit(X, loss=interrupted_at_step_four, steps=100, log_every=2, seed=0,
                             progress=False)
    assert [r["step"] for r in model.history] == [0, 2, 3]  # step 0: the fitted Gaussian
    assert model.history[-1]["interrupted"] is True
    assert not any("interrupted" in r for r in model.history[:-1])


def test_a_budget_that_ends_before_the_first_step_is_an_error_not_an_untrained_model():
    with pytest.raises(ValueError, match=r"training stopped before its first step \(max_time"):
        sdescore.fit(X, max_time=1e-9, progress=False)
    with pytest.raises(ValueError, match="training stopped before its first step"):
        fit_flow(X, max_time=1e-9, progress=False)


def test_validation_is_recorded_at_the_last_step_even_before_log_every():
    model = sdescore.fit(X, steps=30, validation=0.2, seed=0, progress=False, log_every=100)
    assert [r["step"] for r in model.history] == [0, 30]  # step 0: the fitted Gaussian
    assert math.isfinite(model.history[-1]["val_loss"])


def test_labels_must_use_every_class():
    """Labels 0 and 10**7 would build a 10**7-row label table for two classes."""
    labels = np.where(X[:, 0] > 1, 10**7, 0)
    with pytest.raises(ValueError, match=r"labels must use every class 0..K-1 \(K = 10000001"):
        sdescore.fit(X, labels=labels, steps=1, progress=False)
    with pytest.raises(ValueError, match="9999999 classes have no row, the first 1"):
        sdescore.fit_classifier(X, labels, steps=1, progress=False)
    huge = np.where(X[:, 0] > 1, 2**63, 0).astype(np.uint64)  # wrapped to -2**63 before
    with pytest.raises(ValueError, match=r"labels must be below 2\*\*63; got 9223372036854775808"):
        sdescore.fit(X, labels=huge, steps=1, progress=False)


def test_save_writes_through_links_keeps_modes_and_refuses_read_only_files(tmp_path):
    model = fit_flow(X, "realnvp", steps=2, hidden=8, layers=1, seed=0, progress=False)
    target, link = tmp_path / "model.pt", tmp_path / "link.pt"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link.symlink_to(target)
    model.save(link)
    assert link.is_symlink() and (target.stat().st_mode & 0o777) == 0o640
    torch.testing.assert_close(sdescore.load(link).log_prob(X[:3]), model.log_prob(X[:3]))
    target.chmod(0o440)
    with pytest.raises(PermissionError, match="is read-only: not overwritten"):
        model.save(target)
    assert (target.stat().st_mode & 0o777) == 0o440
    with pytest.raises(ValueError, match="no-such-folder does not exist"):
        model.save(tmp_path / "no-such-folder" / "model.pt")


@pytest.mark.parametrize("damage", [
    lambda config: config["datamap"]["scale"].__setitem__(0, -1.0),
    lambda config: config["datamap"].__setitem__("loc", "far away"),
    lambda config: config.__setitem__("shape", "two"),
])
def test_a_file_with_a_bad_data_map_or_fields_is_refused_on_load(tmp_path, damage):
    model = fit_flow(X, "realnvp", steps=2, hidden=8, layers=1, seed=0, progress=False)
    path = tmp_path / "model.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    damage(payload["config"])
    torch.save(payload, path)
    with pytest.raises(ValueError, match="holds a damaged or incompatible sdescore model"):
        sdescore.load(path)


def test_an_adaptive_solve_that_cannot_finish_stops_and_names_max_steps(exact_vp):
    """rtol = atol = 1e-12 is below float32's reach: log_prob refuses it at once; the ODE
    sampler's solve cannot finish and names max_steps (both used to run without end)."""
    with pytest.raises(ValueError, match=r"rtol=1e-12 is below what float32 resolves"):
        exact_vp.log_prob(torch.zeros(4, 2), rtol=1e-12, atol=1e-12, max_steps=30)
    with pytest.raises(RuntimeError, match="max_steps"):
        exact_vp.sample(4, "ode", rtol=1e-12, atol=1e-12, max_steps=30)
    with pytest.raises(ValueError, match="max_steps must be > 0"):
        exact_vp.log_prob(torch.zeros(4, 2), max_steps=0)


def test_more_arguments_are_checked_by_name(exact_vp):
    from sdescore.comparison import compare
    from sdescore.datasets import Split

    with pytest.raises(TypeError, match="ema must be a number in"):
        sdescore.fit(X, ema=None, steps=1, progress=False)
    with pytest.raises(TypeError, match="net must be a torch.nn.Module taking"):
        sdescore.fit(X, net=42, steps=1, progress=False)
    with pytest.raises(TypeError, match="t must be a number or a tensor of times; got str"):
        exact_vp.score(X[:2], "0.5")
    with pytest.raises(ValueError, match="draws must be > 0"):
        sdescore.kl_bound(exact_vp, X[:5], draws=0)
    split = Split("tiny", X[:200].astype(np.float32), X[200:250].astype(np.float32),
                  X[250:].astype(np.float32))
    with pytest.raises(TypeError, match=r"models must be a list of names, e\.g\. \['score'\]"):
        compare(split, "score", max_time=0.1)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="test_points must be > 0"):
            compare(split, ["score"], max_time=0.1, test_points=bad)
    # NumPy numbers are numbers
    model = sdescore.fit(X, steps=2, validation=np.float32(0.5), seed=0, progress=False)
    assert [r["step"] for r in model.history] == [0, 2] and "val_loss" in model.history[-1]
    shaped = sdescore.ScoreModel(exact_vp.sde, exact_vp.score_fn, (np.int64(2),))
    assert shaped.shape == (2,) and type(shaped.shape[0]) is int


def test_flags_take_true_or_false_not_a_truthy_stand_in(exact_vp):
    """A string such as "no" reads as true: every flag refuses what is not a bool, naming
    it, before any work; a NumPy bool is a bool."""
    from sdescore.comparison import compare
    from sdescore.datasets import Split
    from sdescore.distributed import log_prob as sharded_log_prob
    from sdescore.losses import SlicedScoreMatching

    split = Split("tiny", X[:200].astype(np.float32), X[200:250].astype(np.float32),
                  X[250:].astype(np.float32))
    holes = [[0.5, math.nan]]
    calls = {
        "standardize": [lambda v: sdescore.fit(X, steps=1, progress=False, standardize=v),
                        lambda v: fit_flow(X, steps=1, progress=False, standardize=v)],
        "return_error": [lambda v: exact_vp.log_prob(X[:2], return_error=v),
                         lambda v: sharded_log_prob(exact_vp, X[:2], return_error=v)],
        "return_stderr": [lambda v: exact_vp.nll_bound(X[:2], draws=2, return_stderr=v)],
        "denoise": [lambda v: exact_vp.sample(2, denoise=v)],
        "progress": [lambda v: exact_vp.sample(2, progress=v),
                     lambda v: exact_vp.log_prob(X[:2], progress=v),
                     lambda v: exact_vp.impute(holes, noise_levels=2, progress=v),
                     lambda v: compare(split, ["score"], max_time=0.1, progress=v)],
        "variance_reduced": [lambda v: SlicedScoreMatching(exact_vp.sde, variance_reduced=v)],
    }
    for name, uses in calls.items():
        for use in uses:
            for bad in ("no", 0, 1.0):
                with pytest.raises(TypeError, match=f"{name} must be True or False"):
                    use(bad)
    with_error = exact_vp.log_prob(X[:2], return_error=np.bool_(True))
    assert with_error.solver_error.shape == (2,)
    assert torch.equal(exact_vp.log_prob(X[:2], return_error=np.bool_(False)),
                       with_error.log_prob)


def test_nan_and_inf_are_errors_not_results(exact_vp):
    """Langevin at a huge snr and the score at t = 0 (where s(t) = 0 divides a network's
    noise) used to come back as NaN or inf."""
    with pytest.raises(RuntimeError, match="sampling diverged to NaN or inf"):
        exact_vp.sample(50, "langevin", snr=100.0, noise_levels=5, steps_per_level=5, seed=0)
    with pytest.raises(RuntimeError, match="sampling diverged to NaN or inf"):
        exact_vp.impute([[0.5, math.nan]] * 20, noise_levels=5, snr=1e3, seed=0)
    network = sdescore.fit(X, steps=2, seed=0, progress=False)
    with pytest.raises(ValueError,
                       match=r"the score is not finite at t = 0, .* ask for t >= 1e-05"):
        network.score(X[:3], 0.0)
    assert torch.isfinite(network.score(X[:3], 1e-5)).all()


def test_float64_data_keep_their_digits():
    """Timestamps near 1.7e9 a few seconds apart: cast to float32 before the data map they
    fall on a grid of 128 s. The map runs in float64, so the exact N(1.7e9, 5^2) score model
    gives the closed-form density, and fit learns such a column instead of calling it
    constant; samples come back in float64 with their digits."""
    gaussian = sdescore.datasets.GaussianMixture([[0.0]], [[1.0]])
    sde = sdescore.get_sde("vp")
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (1,), loc=1.7e9, scale=5.0)
    z = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    expected = gaussian.marginal(sde, sde.likelihood_eps).log_prob(z) - math.log(5.0)
    torch.testing.assert_close(model.log_prob(1.7e9 + 5 * z).double(), expected,
                               rtol=0, atol=1e-3)

    rng = np.random.default_rng(1)
    times = np.hstack([1.7e9 + rng.normal(0, 5, (400, 1)), rng.normal(size=(400, 1))])
    fitted = sdescore.fit(times, steps=300, seed=0, progress=False)
    draws = fitted.sample(200, seed=0)
    assert draws.dtype == torch.float64 and fitted.dtype == torch.float32
    assert len(np.unique(draws[:, 0].numpy())) == 200
    assert 3 < (draws[:, 0] - 1.7e9).std().item() < 7
    assert abs((draws[:, 0] - 1.7e9).mean().item()) < 2


def test_dtype_asks_for_float64_throughout():
    """fit(dtype="float64") trains and solves in float64, where tolerances far below
    float32's reach are met: an exact Gaussian score's log_prob matches the closed form of
    its linear flow to 1e-8 nats."""
    model = sdescore.fit(X, steps=3, seed=0, dtype="float64", progress=False)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model.log_prob(X[:3]).dtype == torch.float64
    flow = fit_flow(X, "realnvp", steps=2, hidden=8, layers=1, seed=0, dtype=np.float64,
                    progress=False)
    assert flow.log_prob(X[:3]).dtype == torch.float64
    with pytest.raises(ValueError, match="dtype must be float32 or float64; got 'float16'"):
        sdescore.fit(X, steps=1, dtype="float16", progress=False)
    # One Gaussian's probability flow is linear: x_T = m_T + sqrt(v_T / v_eps) (x - m_eps) per
    # axis, so log p_ODE(x) = log N(x_T; 0, I) + (1/2) sum log(v_T / v_eps), prior included.
    gaussian = sdescore.datasets.GaussianMixture([[1.0, -1.0]], [[2.0, 0.5]])
    sde = sdescore.get_sde("subvp")
    exact = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (2,)).double()
    x = gaussian.sample(5, seed=0)
    start, end = gaussian.marginal(sde, sde.likelihood_eps), gaussian.marginal(sde, sde.T)
    v_eps, v_T = start.covs[0].diagonal(), end.covs[0].diagonal()
    x_T = end.means[0] + (v_T / v_eps).sqrt() * (x - start.means[0])
    expected = (-0.5 * x_T**2 - 0.5 * math.log(2 * math.pi)).sum(1) + 0.5 * (v_T / v_eps).log().sum()
    torch.testing.assert_close(exact.log_prob(x, rtol=1e-10, atol=1e-10), expected,
                               rtol=0, atol=1e-8)


def test_samples_are_drawn_in_batches_of_bounded_size(exact_vp, monkeypatch):
    """sample(10**8) used to build all rows at once. A spy on the score sees at most
    batch_size rows; the batched draws still follow N(0, I); a draw that fits in one batch
    is the unbatched one."""
    seen = []

    def spied(x, t):
        seen.append(x.shape[0])
        return exact_vp.score_fn(x, t)

    model = sdescore.ScoreModel(exact_vp.sde, spied, (2,))
    draws = model.sample(3000, "ddpm", steps=50, seed=0, batch_size=700)
    assert max(seen) == 700 and sum(seen) == 50 * 3000 and draws.shape == (3000, 2)
    torch.testing.assert_close(draws.mean(0), torch.zeros(2), atol=0.1, rtol=0)
    torch.testing.assert_close(draws.T.cov(), torch.eye(2), atol=0.1, rtol=0)
    torch.testing.assert_close(model.sample(5, seed=1, batch_size=5), model.sample(5, seed=1))
    seen.clear()
    monkeypatch.setattr(sdescore.models.base, "SAMPLE_BATCH_NUMBERS", 8)  # 4 two-D rows
    model.sample(10, "ddpm", steps=25, seed=0)
    assert seen == [4] * 25 + [4] * 25 + [2] * 25
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        model.sample(3, batch_size=0)


def test_a_training_batch_is_never_larger_than_the_data():
    """batch_size=10**7 on 300 rows used to draw 10**7 rows with replacement per step."""
    sizes = []
    loss = sdescore.losses.DenoisingScoreMatching(sdescore.get_sde("subvp"))

    def spied(score_fn, x0, generator=None):
        sizes.append(x0.shape[0])
        return loss(score_fn, x0, generator=generator)

    sdescore.fit(X, loss=spied, steps=2, batch_size=10**7, validation=0, seed=0, progress=False)
    assert sizes == [300, 300]


def test_constant_images_are_named_and_huge_guidance_stops(exact_vp):
    with pytest.raises(ValueError, match="data are constant"):
        sdescore.fit(np.full((10, 1, 4, 4), 0.5), steps=1, progress=False)
    log_q = lambda y, x, t: -((x[:, 0] - 2.0 * y) ** 2)  # noqa: E731
    # guidance_scale=1e6 ran without end; now the adaptive solve stops and says why
    with pytest.raises(RuntimeError, match="ODE solver 'dopri5' shrank its step to nothing"):
        exact_vp.sample(4, y=1, classifier=log_q, guidance_scale=1e6, max_steps=200, seed=0)
