"""fit(): it learns, keeps the data map inside the model, is seeded, and guards its door."""
import pickle

import numpy as np
import pytest
import torch

import sdescore
from sdescore.datasets import GaussianMixture

COV = [[1.0, 0.6], [0.6, 0.8]]


@pytest.fixture(scope="module")
def gaussian():
    return GaussianMixture([[2.0, -1.0]], [COV])


@pytest.fixture(scope="module")
def trained(gaussian):
    data = gaussian.sample(5000, seed=0).float()
    return sdescore.fit(data, "subvp", steps=500, seed=0, progress=False, validation=0.1)


def test_fit_learns_a_gaussian_up_to_a_small_kl(trained, gaussian):
    """KL(p || model) estimated on fresh draws by the exact ODE likelihood."""
    test = gaussian.sample(1000, seed=1)
    gap = gaussian.log_prob(test) - trained.log_prob(test.float()).double()
    assert gap.mean() < 0.05, f"KL estimate {gap.mean():.4f} nats"
    samples = trained.sample(4000, seed=2).double()
    torch.testing.assert_close(samples.mean(0), gaussian.means[0], atol=0.1, rtol=0)
    torch.testing.assert_close(samples.T.cov(), gaussian.covs[0], atol=0.1, rtol=0)


def test_history_records_training_and_validation_loss(trained):
    """Step 0 (the fitted Gaussian, scored only), then a record every ten passes over the
    4500 training rows in 1024-row batches (50 steps)."""
    steps = [r["step"] for r in trained.history]
    assert steps == [0] + list(range(50, 501, 50))
    assert trained.history[0]["reference"] == "gaussian" and "loss" not in trained.history[0]
    after = trained.history[1:]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_loss"]) for r in after)
    assert after[-1]["val_loss"] < after[0]["val_loss"]


def test_standardisation_lives_inside_the_model(trained, gaussian):
    """fit keeps y = (x - mean) / std in the model. The same network behind the map for
    a x + b gives log_prob shifted by exactly -d log a, the score divided by a, and samples
    mapped over: the public methods speak the data's coordinates."""
    train_rows = gaussian.sample(5000, seed=0).float()
    loc, scale = trained.datamap.loc, trained.datamap.scale
    assert loc.shape == (2,) and scale.shape == (2,)
    torch.testing.assert_close(loc.float(), train_rows.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(scale.float(), train_rows.std(0), atol=0.05, rtol=0)
    moved = sdescore.ScoreModel(trained.sde, trained.score_fn, (2,), loc=100 * loc + 7,
                                scale=100 * scale)
    probe = gaussian.sample(20, seed=3).float()
    # A fixed grid makes both solves take the same steps, so only rounding separates them.
    fixed = {"solver": "rk4", "steps": 50}
    torch.testing.assert_close(moved.log_prob(100 * probe + 7, **fixed),
                               trained.log_prob(probe, **fixed) - 2 * np.log(100),
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(moved.score(100 * probe + 7, 0.5), trained.score(probe, 0.5) / 100)
    torch.testing.assert_close(moved.sample(10, seed=5), 100 * trained.sample(10, seed=5) + 7)


def test_same_seed_same_model(gaussian):
    x = gaussian.sample(300, seed=6).float()
    a = sdescore.fit(x, steps=20, seed=7, progress=False)
    b = sdescore.fit(x, steps=20, seed=7, progress=False)
    c = sdescore.fit(x, steps=20, seed=8, progress=False)
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), key
    assert not torch.equal(a.score_fn.net.inp.weight, c.score_fn.net.inp.weight)


def test_callback_can_stop_training(gaussian):
    x = gaussian.sample(300, seed=9).float()
    stopped = sdescore.fit(x, steps=1000, log_every=10, progress=False,
                           callback=lambda record: record["step"] >= 30)
    assert stopped.history[-1]["step"] == 30


def test_max_time_stops_at_the_first_step_that_would_start_past_the_budget(monkeypatch):
    """The clock is read before each step: with steps that take exactly 1 s on a fake clock,
    max_time = 4.5 allows the steps that start at 0, 1, 2, 3 and 4 s, and no more."""
    from sdescore.training import TrainConfig, engine

    clock = {"now": 0.0}
    monkeypatch.setattr(engine, "perf_counter", lambda: clock["now"])

    def one_second_loss(module, batch, generator=None):
        clock["now"] += 1.0
        return module(batch).square().sum(-1)

    net = torch.nn.Linear(2, 1)
    config = TrainConfig(max_time=4.5, progress=False, log_every=2)
    history = engine.train_loop(net, torch.optim.SGD(net.parameters(), lr=0.0),
                                one_second_loss, (torch.randn(16, 2),), config, batch_size=4)
    assert [r["step"] for r in history] == [2, 4, 5]
    assert history[-1]["seconds"] == 5.0


def test_max_time_is_not_spent_on_scoring_the_step_0_candidate(monkeypatch):
    """A step-0 candidate whose held-out scoring takes 10 s on the fake clock, then 1-s
    steps: max_time = 4.5 still allows five steps (the budget starts at the first step),
    while the records' seconds count from the call."""
    from sdescore.training import TrainConfig, engine

    clock = {"now": 0.0}
    monkeypatch.setattr(engine, "perf_counter", lambda: clock["now"])

    def one_second_loss(module, batch, generator=None):
        clock["now"] += 1.0
        return module(batch).square().sum(-1)

    def validate(module):
        clock["now"] += 10.0 if clock["now"] == 0.0 else 0.0
        return torch.ones(8)

    net = torch.nn.Linear(2, 1)
    config = TrainConfig(max_time=4.5, progress=False, log_every=2)
    with pytest.warns(UserWarning, match="start scored best"):
        history = engine.train_loop(net, torch.optim.SGD(net.parameters(), lr=0.0),
                                    one_second_loss, (torch.randn(16, 2),), config,
                                    batch_size=4, validate=validate, initial={"name": "start"})
    assert [r["step"] for r in history] == [0, 2, 4, 5]
    assert [r["seconds"] for r in history] == [0.0, 12.0, 14.0, 15.0]


@pytest.mark.parametrize("budget", ["steps", "max_time"])
@pytest.mark.parametrize("schedule, total", [("constant", 40.0), ("cosine", 20.5)])
def test_lr_schedule_moves_a_unit_gradient_by_the_sum_of_its_rates(monkeypatch, budget,
                                                                   schedule, total):
    """Under SGD at lr 1, a loss whose gradient is always 1 moves the weight by the sum of the
    step sizes: N = 40 for "constant", sum over k < N of (1 + cos(pi k / N)) / 2 = (N + 1) / 2
    for "cosine", whether the budget is N steps or N seconds of 1-s steps (a fake clock)."""
    from sdescore.training import TrainConfig, engine

    clock = {"now": 0.0}
    monkeypatch.setattr(engine, "perf_counter", lambda: clock["now"])

    def unit_gradient(module, batch, generator=None):
        clock["now"] += 1.0
        return module.weight.sum() * torch.ones(batch.shape[0])

    net = torch.nn.Linear(1, 1, bias=False)
    net.weight.data.zero_()
    limits = {"steps": 40} if budget == "steps" else {"max_time": 40.0}
    config = TrainConfig(progress=False, log_every=10, lr_schedule=schedule, **limits)
    engine.train_loop(net, torch.optim.SGD(net.parameters(), lr=1.0), unit_gradient,
                      (torch.zeros(4, 1),), config, batch_size=4)
    assert net.weight.item() == pytest.approx(-total, rel=1e-6)


def test_ve_sigma_max_defaults_to_the_largest_distance_in_standardised_data(gaussian):
    x = gaussian.sample(300, seed=10).float()
    model = sdescore.fit(x, "ve", steps=1, validation=0, progress=False)
    y = (x - x.mean(0)) / x.std(0)
    assert model.sde.sigma_max == pytest.approx(torch.cdist(y, y).max().item(), rel=1e-5)


def standardised_gaussian(model, gaussian):
    """The data's Gaussian seen in the model's standardised space (another Gaussian)."""
    loc, scale = model.datamap.loc.double().flatten(), model.datamap.scale.double().flatten()
    return GaussianMixture((gaussian.means - loc) / scale, gaussian.covs / torch.outer(scale, scale))


def excess_loss(model, loss_name, gaussian, n=20000):
    """Population loss of the model's score minus that of the true score, with common random
    numbers: lambda-weighted E||s_theta - grad log p_t||^2 (half that for SSM), >= 0."""
    target = standardised_gaussian(model, gaussian)
    loss = sdescore.losses.get_loss(loss_name, model.sde, model.sde.likelihood_eps)
    y0 = target.sample(n, seed=0)

    def learned(y, t):
        shaped = y.float().reshape((y.shape[0],) + model.shape)
        return model.score_fn(shaped, t.float()).double().reshape(y.shape)

    values = [loss(score, y0, generator=torch.Generator().manual_seed(1)).mean().item()
              for score in (learned, target.score_fn(model.sde))]
    return values[0] - values[1]


@pytest.mark.parametrize("loss", ["dsm", "dsm-likelihood", "ssm", "ssm-vr", "ncsn"])
def test_every_loss_drives_its_excess_over_the_true_score_down(gaussian, loss):
    """Training with each loss removes most of its excess over the true score: the closed
    form minimiser is what the optimiser approaches. The plain noise parameterisation: the
    default's Gaussian fallback would start this Gaussian data most of the way there."""
    data = gaussian.sample(3000, seed=11).float()
    fit = lambda steps: sdescore.fit(data, "vp", loss=loss, steps=steps, seed=0,  # noqa: E731
                                     parameterization="noise", progress=False)
    before, after = excess_loss(fit(1), loss, gaussian), excess_loss(fit(400), loss, gaussian)
    assert 0 < after < 0.05 * before, f"{loss}: excess {before:.4f} -> {after:.4f}"


def test_unet_learns_the_score_of_tiny_gaussian_images():
    """(1, 4, 4) images from a correlated 16-D Gaussian: the U-Net path learns its score in
    300 steps of 256 images (the batch fixed: the CPU default, 32, trades rows for steps)."""
    gen = torch.Generator().manual_seed(0)
    factor = torch.randn(16, 16, generator=gen, dtype=torch.float64) / 4
    cov = factor @ factor.T + 0.2 * torch.eye(16, dtype=torch.float64)
    gaussian = GaussianMixture(torch.zeros(1, 16), cov[None])
    data = gaussian.sample(4000, seed=1).float().reshape(-1, 1, 4, 4)
    fit = lambda steps: sdescore.fit(  # noqa: E731
        data, "vp", net=sdescore.nets.UNet(1, width=16, embed_dim=32), steps=steps,
        batch_size=256, seed=0, progress=False)
    before, after = excess_loss(fit(1), "dsm", gaussian, 4000), excess_loss(fit(300), "dsm", gaussian, 4000)
    assert 0 < after < 0.1 * before, f"excess {before:.4f} -> {after:.4f}"


def test_save_load_round_trip_gives_identical_log_prob(trained, tmp_path):
    path = tmp_path / "model.pt"
    trained.save(path)
    loaded = sdescore.load(path)
    x = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    torch.testing.assert_close(loaded.log_prob(x), trained.log_prob(x), rtol=0, atol=0)
    assert loaded.history == trained.history
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_log_time_embedding_spans_its_range_and_survives_save_load(gaussian, tmp_path):
    """time_input="log" feeds the sinusoids u = log(t / 1e-5) / log(1e5): 0 at t = 1e-5 (and
    below), 1/2 at t = 10^-2.5, 1 at t = 1."""
    from sdescore.nets import MLPScoreNet, SinusoidalTimeEmbedding

    embed = SinusoidalTimeEmbedding(4, max_frequency=1.0, time_input="log")  # frequencies 1, 1
    t = torch.tensor([1e-7, 1e-5, 10 ** -2.5, 1.0])
    u = torch.tensor([0.0, 0.0, 0.5, 1.0])
    torch.testing.assert_close(embed(t), torch.stack([u.sin(), u.sin(), u.cos(), u.cos()], 1))
    net = MLPScoreNet(2, hidden=16, time_input="log", max_frequency=100.0)
    model = sdescore.fit(gaussian.sample(500, seed=0).float(), net=net, steps=5, progress=False)
    model.save(tmp_path / "log_time.pt")
    loaded = sdescore.load(tmp_path / "log_time.pt")
    assert loaded.score_fn.net.config["time_input"] == "log"
    x = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    torch.testing.assert_close(loaded.score(x, 0.01), model.score(x, 0.01), rtol=0, atol=0)
    with pytest.raises(ValueError, match="Unknown time_input 'sqrt'; choose one of: linear, log"):
        MLPScoreNet(2, time_input="sqrt")


def test_save_refuses_unsavable_models_without_touching_the_target(tmp_path):
    sde = sdescore.get_sde("vp")
    model = sdescore.ScoreModel(sde, lambda x, t: -x, (2,))
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous")
    with pytest.raises(TypeError, match="Cannot save a ScoreModel whose score_fn"):
        model.save(target)
    assert target.read_bytes() == b"previous" and len(list(tmp_path.iterdir())) == 1


class _Hostile:
    def __reduce__(self):
        import os
        return (os.system, ("touch hostile-file-ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_load_rejects_corrupt_foreign_and_hostile_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a model at all")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    hostile = tmp_path / "hostile.pt"
    hostile.write_bytes(pickle.dumps(_Hostile()))
    for path in (corrupt, foreign, hostile):
        with pytest.raises(ValueError, match="sdescore model file"):
            sdescore.load(path)
    assert not (tmp_path / "hostile-file-ran").exists()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"data": [[0.0, np.nan], [1.0, 1.0]]}, ValueError, "data contains NaN or inf"),
    ({"data": np.zeros((0, 2))}, ValueError, "data is empty"),
    ({"data": [[1.0, 2.0]]}, ValueError, "data needs at least 2 rows"),
    ({"data": np.array([["a", "b"], ["c", "d"]])}, TypeError, "data must hold real numbers"),
    ({"data": np.zeros(5)}, ValueError, r"data must have shape \(n, d\) or \(n, c, h, w\)"),
    ({"data": np.c_[np.arange(5.0), np.ones(5)]}, ValueError, r"data column\(s\) \[1\] are constant"),
    ({"sde": "vpp"}, ValueError, "Unknown sde 'vpp'; choose one of: ve, vp, subvp"),
    ({"loss": "mse"}, ValueError, "Unknown loss 'mse'"),
    ({"parameterization": "eps"}, ValueError, "Unknown parameterization 'eps'"),
    ({"max_time": 0}, ValueError, "max_time must be > 0"),
    ({"max_time": -1.0}, ValueError, "max_time must be > 0"),
    ({"batch_size": 0}, ValueError, "batch_size must be > 0"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an integer"),
    ({"steps": 0}, ValueError, "steps must be > 0"),
    ({"ema": 1.0}, ValueError, r"ema must be in \[0, 1\)"),
    ({"grad_clip": 0.0}, ValueError, "grad_clip must be > 0"),
    ({"validation": 1.5}, ValueError, r"validation must be 'auto', a fraction in \[0, 1\)"),
    ({"weight_decay": -1.0}, ValueError, r"weight_decay must be > 0; got -1.0"),
    ({"lr_schedule": "step"}, ValueError, "Unknown lr_schedule 'step'"),
])
def test_fit_rejects_bad_input_by_name(kwargs, error, message):
    arguments = {"data": np.random.default_rng(0).normal(size=(50, 2)), "steps": 1,
                 "progress": False, **kwargs}
    with pytest.raises(error, match=message):
        sdescore.fit(**arguments)


def test_gradient_clipping_bounds_each_step():
    """With SGD at lr = 1, a step moves the weights by exactly the clipped gradient: norm
    grad_clip when the raw gradient is larger, the raw gradient otherwise."""
    from sdescore.training import TrainConfig, train_loop

    def one_step(grad_clip):
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 1)
        before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
        loss = lambda f, batch, generator=None: 1e3 * f(batch).square().sum(-1)  # noqa: E731
        config = TrainConfig(steps=1, progress=False, log_every=1, grad_clip=grad_clip,
                             lr_schedule="constant")
        train_loop(net, torch.optim.SGD(net.parameters(), lr=1.0), loss, (torch.randn(64, 3),),
                   config, batch_size=64)
        after = torch.cat([p.detach().flatten() for p in net.parameters()])
        return (after - before).norm().item()

    raw = one_step(None)
    assert raw > 10
    assert one_step(0.5) == pytest.approx(0.5, rel=1e-5)
    assert one_step(10 * raw) == pytest.approx(raw, rel=1e-5)


def test_weight_average_copies_then_follows_a_ramp_with_the_ema_lag():
    """The first update copies; the second moves 9/11 of the way (warm-up rate
    1 - 2/11); once the warm-up has passed, an average with decay d of weights growing by 1
    per update trails them by d / (1 - d) (the steady-state lag of an EMA on a ramp)."""
    from sdescore.training.optim import WeightAverage

    average = WeightAverage(torch.nn.Linear(2, 2, bias=False), decay=0.9)
    average.module.weight.data.zero_()
    live = torch.nn.Linear(2, 2, bias=False)
    for k in range(400):
        live.weight.data.fill_(float(k) if k > 0 else 5.0)
        average.update(list(live.parameters()))
        if k == 0:
            assert torch.all(average.module.weight == 5.0)
        if k == 1:
            assert torch.allclose(average.module.weight, torch.tensor(5.0 + 9 / 11 * (1 - 5)))
    assert average.module.weight.requires_grad
    assert torch.allclose(average.module.weight, torch.tensor(399.0 - 9.0), atol=1e-3)


def test_adam_helper_matches_plain_adam():
    """The fused kernel, where this torch has one, takes the same steps as Adam's loop."""
    from sdescore.training.optim import adam

    torch.manual_seed(0)
    nets = [torch.nn.Linear(4, 3) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = adam(nets[0].parameters(), 1e-2)
    if not fused.defaults.get("fused"):
        pytest.skip("this torch has no fused Adam for the CPU: nothing to compare")
    optimizers = [fused, torch.optim.Adam(nets[1].parameters(), lr=1e-2, foreach=False)]
    x = torch.randn(32, 4)
    for _ in range(20):
        for net, optimizer in zip(nets, optimizers):
            optimizer.zero_grad()
            net(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6)
