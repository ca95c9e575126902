"""The same maths on a CUDA device: skipped where torch sees no GPU (as on CI).

Run on a machine with one: ``python -m pytest -q tests/test_cuda.py``.
"""
import math

import pytest
import torch

import sdescore
from sdescore.oracle import GaussianMixture, random_mixture

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def gaussian():
    return GaussianMixture([[3.0, -1.0]], [[[2.0, 0.6], [0.6, 0.5]]])


@pytest.fixture(scope="module")
def trained(gaussian):
    return sdescore.fit(gaussian.sample(5000, seed=0).float(), steps=1500, seed=0,
                        device="cuda", progress=False)


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_exact_score_log_prob_matches_the_mixture_on_the_gpu(name):
    mixture = random_mixture(3, seed=3)
    sde = sdescore.get_sde(name, **({"sigma_max": 10.0} if name == "ve" else {}))
    model = sdescore.ScoreModel(sde, mixture.score_fn(sde), (3,)).to(CUDA)
    x = mixture.sample(300, seed=1)
    for options in ({}, {"solver": "dpm", "steps": 80}):
        estimate = model.log_prob(x.float(), **options)  # CPU rows go to the model's device
        assert estimate.device.type == "cuda"
        error = (estimate.double().cpu() - mixture.log_prob(x)).abs().mean()
        assert error < 0.01, f"{options}: mean |error| {error:.4f} nats"


def test_fit_on_the_gpu_learns_and_keeps_everything_there(trained, gaussian):
    assert trained.device.type == "cuda" and trained.sample(3, seed=0).device.type == "cuda"
    assert all(p.device.type == "cuda" for p in trained.parameters())
    test = gaussian.sample(1000, seed=1)
    gap = (gaussian.log_prob(test) - trained.log_prob(test.float()).double().cpu()).mean()
    assert gap < 0.05, f"KL estimate {gap:.4f} nats"


def test_gpu_and_cpu_copies_agree_and_survive_save_load(trained, tmp_path):
    x = torch.tensor([[3.0, -1.0], [1.0, 0.0], [5.0, -2.0]])
    fixed = {"solver": "rk4", "steps": 50}
    on_gpu = trained.log_prob(x, **fixed).cpu()
    trained.save(tmp_path / "model.pt")
    for where in ("cpu", "cuda"):
        loaded = sdescore.load(tmp_path / "model.pt", map_location=where)
        assert loaded.device.type == where
        torch.testing.assert_close(loaded.log_prob(x, **fixed).cpu(), on_gpu, rtol=0, atol=1e-3)


@pytest.mark.parametrize("method", ["ode", "sde", "pc", "langevin", "ddpm", "dpm"])
def test_every_sampler_runs_seeded_on_the_gpu(method, gaussian):
    sde = sdescore.get_sde("vp")
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (2,)).to(CUDA)
    options = {"ode": {}, "langevin": {}, "dpm": {}}.get(method, {"steps": 200})
    first = model.sample(2000, method, seed=7, **options)
    assert first.device.type == "cuda"
    torch.testing.assert_close(first, model.sample(2000, method, seed=7, **options))
    mean = first.double().mean(0).cpu()
    assert (mean - gaussian.means[0]).abs().max() < 4 * math.sqrt(2.0 / 2000) + 0.05


def test_imputation_and_guidance_on_the_gpu(gaussian):
    sde = sdescore.get_sde("vp")
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (2,)).to(CUDA)
    rows = torch.tensor([[3.0, math.nan]] * 500)
    filled = model.impute(rows, seed=0)
    truth = gaussian.conditional(torch.tensor([3.0]), [True, False])
    assert abs(filled[:, 1].double().mean().item() - truth.means[0, 0].item()) < 0.1
    labels = (gaussian.sample(2000, seed=2)[:, 0] > 3).long()
    conditional = sdescore.fit(gaussian.sample(2000, seed=2).float(), labels=labels, steps=300,
                               seed=0, device="cuda", progress=False)
    upper = conditional.sample(500, y=1, seed=0, method="sde", steps=200)
    assert upper.device.type == "cuda" and upper[:, 0].mean() > 3.5
