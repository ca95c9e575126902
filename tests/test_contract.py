"""One contract for every density model: ScoreModel and FlowModel alike.

Both are fitted to the same table, whose columns sit far from 0 and at very different scales,
so the data map matters: log_prob must be a normalised density of the model's own samples in
the data's coordinates, save/load must give back the same model, files written by the first
formats must still load, and bad input must be refused by name.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import sdescore
from sdescore._files import plain, same
from sdescore.baselines import fit_flow
from sdescore.oracle import GaussianMixture

DATA = Path(__file__).parent / "data"
TABLE = GaussianMixture([[100.0, -5.0]], [[[400.0, 1.2], [1.2, 0.01]]])


@pytest.fixture(scope="module", params=["score", "flow"])
def model(request):
    rows = TABLE.sample(3000, seed=0).float()
    if request.param == "score":
        return sdescore.fit(rows, steps=300, seed=0, progress=False)
    return fit_flow(rows, "realnvp", steps=300, seed=0, hidden=32, layers=4, progress=False)


def test_log_prob_is_a_normalised_density_of_the_models_own_samples(model):
    """For any density q, E_{x ~ model}[q(x) / p(x)] = integral of q = 1 when log_prob is the
    density that sample draws from, Jacobian of the data map included (a wrong
    log-determinant scales the mean by its exponential). q: the Gaussian of the samples'
    moments, so the ratio stays bounded."""
    samples = model.sample(4000, seed=1).double()
    reference = torch.distributions.MultivariateNormal(samples.mean(0), samples.T.cov())
    ratio = (reference.log_prob(samples) - model.log_prob(samples.float()).double()).exp()
    mean, se = ratio.mean().item(), (ratio.std() / math.sqrt(len(ratio))).item()
    assert abs(mean - 1) < 4 * se + 0.01, f"E[q / p] = {mean:.4f} +- {se:.4f}"


def test_save_load_round_trip_gives_the_same_model(model, tmp_path):
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = sdescore.load(path)
    assert type(loaded) is type(model) and same(plain(loaded.config(), "config"),
                                                 plain(model.config(), "config"))
    x = TABLE.sample(5, seed=2).float()
    fixed = {"solver": "rk4", "steps": 20} if isinstance(model, sdescore.ScoreModel) else {}
    torch.testing.assert_close(loaded.log_prob(x, **fixed), model.log_prob(x, **fixed),
                               rtol=0, atol=0)
    torch.testing.assert_close(loaded.sample(5, seed=3), model.sample(5, seed=3), rtol=0, atol=0)
    assert loaded.history == model.history
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


@pytest.mark.parametrize("x, error, message", [
    (np.array([[0.0, np.nan]]), ValueError, "x contains NaN or inf"),
    (np.zeros((3, 5)), ValueError, r"x must have shape \(n, 2\); got \(3, 5\)"),
    (np.zeros((0, 2)), ValueError, "x is empty"),
    (np.array([["a", "b"]]), TypeError, "x must hold real numbers"),
])
def test_bad_input_is_refused_by_name(model, x, error, message):
    with pytest.raises(error, match=message):
        model.log_prob(x)


def test_log_prob_takes_a_seed_and_a_rows_value_repeats_in_any_batch(model):
    """Every kind's log_prob takes ``seed`` (a flow's draws nothing), refuses a bad one by
    name, and with a seed gives a row the same value alone and in a batch, Hutchinson's
    estimate included, so callers (bits_per_dim, distributed, scikit-learn) pass one."""
    x = TABLE.sample(6, seed=4).float()
    options = {"trace": "hutchinson"} if isinstance(model, sdescore.ScoreModel) else {}
    batch = model.log_prob(x, seed=3, **options)
    alone = torch.cat([model.log_prob(x[i:i + 1], seed=3, **options) for i in range(6)])
    torch.testing.assert_close(alone, batch, rtol=0, atol=2e-3)  # float32's batched rounding
    with pytest.raises(ValueError, match="seed must be in"):
        model.log_prob(x, seed=-1)


def test_sample_counts_are_checked_and_zero_is_an_empty_batch(model):
    with pytest.raises(ValueError, match="n must be >= 0"):
        model.sample(-1)
    with pytest.raises(TypeError, match="n must be an integer"):
        model.sample(2.5)
    assert model.sample(0).shape == (0, 2)


@pytest.mark.parametrize("name", ["score", "flow"])
def test_files_of_the_first_formats_load_and_give_the_same_log_prob(name):
    """Files written before the data map moved from the weights into the config (commit
    a7c0b40, see legacy_expected.json) load with their map and give that code's densities."""
    expected = json.loads((DATA / "legacy_expected.json").read_text())
    loaded = sdescore.load(DATA / f"legacy_{name}_model.pt")
    x = torch.tensor(expected["points"])
    fixed = {"solver": "rk4", "steps": 50} if name == "score" else {}
    torch.testing.assert_close(loaded.log_prob(x, **fixed),
                               torch.tensor(expected[f"{name}_model_log_prob"]),
                               rtol=0, atol=1e-4)


PUBLIC_MODULES = ["sdescore", "sdescore.baselines", "sdescore.bounds", "sdescore.cli",
                  "sdescore.comparison", "sdescore.datamap", "sdescore.datasets",
                  "sdescore.ddpm", "sdescore.distributed", "sdescore.io", "sdescore.losses",
                  "sdescore.metrics", "sdescore.mnist", "sdescore.models", "sdescore.nets",
                  "sdescore.oracle", "sdescore.parameterization", "sdescore.plot",
                  "sdescore.sde", "sdescore.sklearn", "sdescore.training"]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_module_says_what_it_exports_and_has_it(name):
    import importlib

    module = importlib.import_module(name)
    assert module.__all__, name
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"


def test_the_public_names_of_the_design_are_importable_where_they_were():
    """The names outside code relies on (shared/DESIGN.md, 'The public contract')."""
    from sdescore.baselines import fit_flow
    from sdescore.datasets import load_mnist
    from sdescore.distributed import log_prob
    from sdescore.plot import image_grid
    from sdescore.sklearn import FlowDensity, ScoreDensity

    assert all(map(callable, (fit_flow, load_mnist, log_prob, image_grid, FlowDensity,
                              ScoreDensity)))

    for name in ["fit", "ScoreModel", "get_sde", "VESDE", "VPSDE", "SubVPSDE", "fit_classifier",
                 "kl_bound", "bits_per_dim", "compare", "load", "TrainConfig"]:
        assert hasattr(sdescore, name), name
    assert callable(sdescore.compare)  # the function, not a module
