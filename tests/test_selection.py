"""Choosing the weights by held-out quality (issue 16): the training engine keeps the best
scored weights and restores them, stops when patience runs out, and says so; fit and
fit_flow hold out rows by default."""
import math
import warnings

import numpy as np
import pytest
import torch

import sdescore
from sdescore import training
from sdescore.baselines import fit_flow
from sdescore.training.data import auto_validation_rows, split


def engine_config(**options):
    """The engine alone: a constant rate, no clipping, no patience unless asked, quiet."""
    return training.TrainConfig(**{"lr_schedule": "constant", "grad_clip": None,
                                   "patience": None, "progress": False, **options})


def _turning_loss(turn_at: int):
    """Pull a 1-weight module's weight toward 1 for ``turn_at`` steps, then push it away."""
    calls = {"n": 0}

    def loss(module, batch, generator=None):
        calls["n"] += 1
        sign = 1.0 if calls["n"] <= turn_at else -1.0
        return sign * (module.weight - 1.0).square().sum() * torch.ones(batch.shape[0])
    return loss


def test_the_best_scored_weights_are_restored_and_patience_stops_training():
    """The held-out score |w - 1| falls for 30 SGD steps and rises after: the engine returns
    the weights of the best record (step 30) and stops 3 records later, saying why."""
    torch.manual_seed(0)
    module = torch.nn.Linear(1, 1, bias=False)
    module.weight.data.fill_(-1.0)
    seen = {}

    def validate(m):
        value = (m.weight - 1.0).abs().item()
        seen[len(seen)] = (value, m.weight.item())
        return value + torch.linspace(-1.0, 1.0, 5)  # five held-out rows

    with pytest.warns(UserWarning, match=r"held-out loss rose from .* at step 30 .* the "
                                         r"weights of step 30 are returned"):
        history = training.train_loop(module, torch.optim.SGD(module.parameters(), lr=0.05), _turning_loss(30), (torch.zeros(8, 1),), engine_config(steps=1000, log_every=10, patience=3), batch_size=8, validate=validate)
    assert [r["step"] for r in history] == [10, 20, 30, 40, 50, 60]
    assert [r["step"] for r in history if r.get("selected")] == [30]
    assert history[-1]["stopped"] == "patience"
    assert module.weight.item() == seen[2][1]  # the weight scored at step 30
    assert all(r["val_loss"] >= history[2]["val_loss"] for r in history)


def test_slow_noisy_progress_is_not_cut_short_by_patience():
    """A held-out score falling by 0.1 per record with one lucky record (20) that the trend
    only beats 16 records later: the records after it are clearly worse, but patience 3 waits
    as many records as led to the lucky one, so training goes on to the budget and returns
    the last, best weights."""
    module = torch.nn.Linear(1, 1, bias=False)
    scores = [10 - 0.1 * i for i in range(50)]
    scores[20] = 10 - 0.1 * 35.5
    calls = iter(scores)
    history = training.train_loop(module, torch.optim.SGD(module.parameters(), lr=0.0), _turning_loss(10**6), (torch.zeros(8, 1),), engine_config(steps=500, log_every=10, patience=3), batch_size=8, validate=lambda m: torch.full((4,), next(calls)))
    assert len(history) == 50 and "stopped" not in history[-1]
    assert [i for i, r in enumerate(history) if r.get("selected")] == [49]


def test_a_noisy_plateau_is_not_cut_short_by_patience():
    """Held-out scores that have stopped improving but do not rise (each record: 200 rows of
    1 + 0.1 N(0, 1), fresh noise): the best is a lucky record, yet the records after it are
    not clearly worse than it, so patience 3 never stops the run; the same scores with one
    row each (no per-row spread to judge by) stop it."""
    generator = torch.Generator().manual_seed(0)
    scores = [1 + 0.1 * torch.randn(200, generator=generator) for _ in range(40)]

    def run(rows):
        calls = iter(scores)
        module = torch.nn.Linear(1, 1, bias=False)
        return training.train_loop(module, torch.optim.SGD(module.parameters(), lr=0.0), _turning_loss(10**6), (torch.zeros(8, 1),), engine_config(steps=400, log_every=10, patience=3), batch_size=8, validate=lambda m: rows(next(calls)))

    plateau = run(lambda values: values)
    assert len(plateau) == 40 and "stopped" not in plateau[-1]
    assert run(lambda values: values.mean()[None])[-1]["stopped"] == "patience"


def test_a_selection_at_the_first_record_is_told():
    module = torch.nn.Linear(1, 1, bias=False)
    module.weight.data.fill_(-1.0)
    with pytest.warns(UserWarning, match="best at the first evaluation"):
        history = training.train_loop(module, torch.optim.SGD(module.parameters(), lr=0.05), _turning_loss(5), (torch.zeros(8, 1),), engine_config(steps=50, log_every=10), batch_size=8, validate=lambda m: (m.weight - 1.0).abs().detach())
    assert history[0]["selected"] and "stopped" not in history[-1]


def test_without_validation_the_last_weights_are_returned():
    module = torch.nn.Linear(1, 1, bias=False)
    module.weight.data.fill_(-1.0)
    history = training.train_loop(module, torch.optim.SGD(module.parameters(), lr=0.05), _turning_loss(5), (torch.zeros(8, 1),), engine_config(steps=20, log_every=10, patience=1), batch_size=8)
    assert not any(r.get("selected") for r in history) and len(history) == 2


@pytest.mark.parametrize("n, held", [(10, 0), (19, 0), (20, 4), (133, 26), (1000, 100),
                                     (10**5, 2000)])
def test_auto_validation_holds_out_a_tenth_with_a_floor_and_a_cap(n, held):
    assert auto_validation_rows(n) == held
    train, validation, _, _ = split(torch.zeros(n, 2), "auto")
    assert (0 if validation is None else len(validation)) == held and len(train) == n - held


def test_fit_returns_the_weights_its_held_out_score_chose():
    """The selected record's val_loss is the held-out NLL bound of the returned model,
    recomputed from scratch."""
    x = np.random.default_rng(0).normal(size=(240, 2))
    held, rows = x[:40], x[40:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sdescore.fit(rows, steps=300, log_every=50, validation=held, seed=0,
                             progress=False)
    chosen = [r for r in model.history if r.get("selected")]
    assert len(chosen) == 1 and all("val_loss" in r for r in model.history)
    from sdescore.training.selection import held_out_nll_bound

    validate = held_out_nll_bound(
        model.sde, (model.datamap.to_model(torch.as_tensor(held), torch.float32),),
        model.datamap.log_det.item(), chunk=4 * 256)
    assert validate(model.score_fn).double().mean().item() == pytest.approx(
        chosen[0]["val_loss"], rel=1e-6)


def test_fit_and_fit_flow_hold_out_rows_by_default():
    x = np.random.default_rng(0).normal(size=(200, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sdescore.fit(x, steps=100, log_every=50, seed=0, progress=False)
        flow = fit_flow(x, "realnvp", steps=100, log_every=50, hidden=8, layers=1, seed=0,
                        progress=False)
    for trained in (model, flow):
        assert sum(bool(r.get("selected")) for r in trained.history) == 1
        assert all("val_loss" in r for r in trained.history)
    off = sdescore.fit(x, steps=100, validation=0, seed=0, progress=False)
    assert not any("val_loss" in r for r in off.history)
    with pytest.raises(ValueError, match="select_by"):
        sdescore.fit(x, steps=1, select_by="aic", progress=False)
    with pytest.raises(ValueError, match="patience must be > 0"):
        sdescore.fit(x, steps=1, patience=0, progress=False)
    with pytest.raises(ValueError, match="validation must be 'auto', a fraction"):
        sdescore.fit(x, steps=1, validation="half", progress=False)


def test_the_default_fit_on_a_small_table_stays_near_the_truth():
    """120 rows of an 8-D Gaussian, 2000 steps: without held-out selection the network
    memorises them; by default it stays within half a nat of the true log-density and of
    the Gaussian fitted to the same rows."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, 8))
    law = sdescore.oracle.GaussianMixture([rng.normal(size=8).tolist()],
                                          [(mixing @ mixing.T / 8 + 0.2 * np.eye(8)).tolist()])
    rows, test = law.sample(120, seed=1).numpy(), law.sample(1000, seed=2)
    fitted = sdescore.oracle.GaussianMixture([rows.mean(0).tolist()],
                                             [np.cov(rows, rowvar=False).tolist()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sdescore.fit(rows, steps=2000, seed=0, progress=False)
    held_out = model.log_prob(test.float()).double().mean().item()
    assert held_out > law.log_prob(test).mean().item() - 0.6
    assert held_out > fitted.log_prob(test).mean().item() - 0.5


def test_mlp_dropout_acts_while_training_only_and_survives_save_load(tmp_path):
    """Dropout on the residual blocks: two training-mode passes differ, the fitted (eval)
    model is deterministic and equal to its saved copy; a rate of 1 is refused."""
    from sdescore.nets import MLPScoreNet

    torch.manual_seed(0)
    net = MLPScoreNet(2, hidden=16, dropout=0.3)
    x, t = torch.randn(8, 2), torch.full((8,), 0.5)
    assert not torch.equal(net.train()(x, t), net(x, t))
    model = sdescore.fit(torch.randn(200, 2), net=net, steps=3, validation=0, seed=0,
                         progress=False)
    model.save(tmp_path / "mlp.pt")
    loaded = sdescore.load(tmp_path / "mlp.pt")
    assert loaded.score_fn.net.config["dropout"] == 0.3
    torch.testing.assert_close(model.score(x, 0.5), model.score(x, 0.5), rtol=0, atol=0)
    torch.testing.assert_close(loaded.score(x, 0.5), model.score(x, 0.5), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        MLPScoreNet(2, dropout=1.0)


def test_a_non_finite_held_out_score_counts_against_patience():
    """A model whose held-out scores turn infinite after its best (a diverged flow) is
    stopped by patience like one whose scores rise; a first scoring that is already infinite
    is never selected."""
    scores = [torch.full((4,), 1.0)] + [torch.full((4,), math.inf)] * 20
    calls = iter(scores)
    module = torch.nn.Linear(1, 1, bias=False)
    with pytest.warns(UserWarning, match="best at the first evaluation"):
        history = training.train_loop(module, torch.optim.SGD(module.parameters(), lr=0.0), _turning_loss(10**6), (torch.zeros(8, 1),), engine_config(steps=200, log_every=10, patience=3), batch_size=8, validate=lambda m: next(calls))
    assert len(history) == 4 and history[-1]["stopped"] == "patience"
    assert history[0]["selected"]
    calls = iter([torch.full((4,), math.inf)] + [torch.full((4,), 1.0)] * 3)
    history = training.train_loop(module, torch.optim.SGD(module.parameters(), lr=0.0), _turning_loss(10**6), (torch.zeros(8, 1),), engine_config(steps=40, log_every=10, patience=3), batch_size=8, validate=lambda m: next(calls))
    assert [i for i, r in enumerate(history) if r.get("selected")] == [1]
