"""Integer data (issue 17, item 2): fit dequantises uint8 data afresh at every batch and keeps
the number of levels; bits_per_dim of a model matches the closed form of a Gaussian."""
import math

import numpy as np
import pytest
import torch

import sdescore


def test_bits_per_dim_of_an_exact_gaussian_matches_its_closed_form():
    """For N(mu, sigma^2) and x = (k + u) / L, E_u[-log p(x)] = log(2 pi sigma^2) / 2 +
    ((c - mu)^2 + w^2 / 12) / (2 sigma^2), c the bin's centre and w = 1 / L its width;
    bits/dim adds log2 L after dividing by ln 2."""
    mu, sigma, levels = 0.5, 0.2, 16
    gaussian = sdescore.datasets.GaussianMixture([[mu]], [[sigma**2]])
    sde = sdescore.get_sde("vp")
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (1,), levels=levels).double()
    k = np.array([[2], [8], [13]])
    centre, width = (k[:, 0] + 0.5) / levels, 1 / levels
    nll = 0.5 * math.log(2 * math.pi * sigma**2) + ((centre - mu) ** 2 + width**2 / 12) / (
        2 * sigma**2)
    expected = torch.as_tensor(nll / math.log(2) + math.log2(levels))
    bits = model.bits_per_dim(k, draws=1000, seed=0)
    torch.testing.assert_close(bits, expected, rtol=0, atol=0.02)
    # values already dequantised are scored as they are
    x = torch.tensor([[0.40], [0.55]], dtype=torch.float64)
    torch.testing.assert_close(model.bits_per_dim(x),
                               sdescore.bits_per_dim(-model.log_prob(x), 1, levels=levels))
    with pytest.raises(ValueError, match=r"x must hold integers in \[0, 15\]"):
        model.bits_per_dim(np.array([[16]]))
    with pytest.raises(ValueError, match="bits_per_dim needs a model of integer data"):
        sdescore.ScoreModel(sde, gaussian.score_fn(sde), (1,)).bits_per_dim(k)
    # the converter refuses what would give inf, NaN or a math domain error
    for options, error, message in [({"levels": 1}, ValueError, "levels must be >= 2"),
                                    ({"levels": 0}, ValueError, "levels must be > 0"),
                                    ({"levels": 2.5}, TypeError, "levels must be an integer"),
                                    ({"dim": 0}, ValueError, "dim must be > 0"),
                                    ({"log_scale": math.inf}, ValueError, "log_scale must be finite"),
                                    ({"log_scale": "1"}, TypeError, "log_scale must be a number")]:
        arguments = {"dim": 1, "levels": levels, **options}
        with pytest.raises(error, match=message):
            sdescore.bits_per_dim(torch.tensor([1.0]), **arguments)


def test_bits_per_dim_of_a_row_does_not_depend_on_its_batch():
    """A row's dequantisation noise (and Hutchinson's probes) come from the seed and its own
    values: with a seed its bits are the same alone, in reverse order and in a batch; the
    draws of one seed still spread over each bin (a Gaussian's bits move with u)."""
    gaussian = sdescore.datasets.random_mixture(3, components=1, seed=1)
    sde = sdescore.get_sde("subvp")
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (3,), levels=256).double()
    k = np.random.default_rng(0).integers(0, 256, size=(40, 3))
    for options in ({}, {"trace": "hutchinson"}):
        batch = model.bits_per_dim(k, draws=3, seed=7, **options)
        alone = torch.cat([model.bits_per_dim(row[None], draws=3, seed=7, **options)
                           for row in k[:5]])
        reverse = model.bits_per_dim(k[::-1].copy(), draws=3, seed=7, **options).flip(0)
        torch.testing.assert_close(alone, batch[:5], rtol=0, atol=1e-6)
        torch.testing.assert_close(reverse, batch, rtol=0, atol=1e-6)
        assert (model.bits_per_dim(k, draws=3, seed=8, **options) - batch).abs().max() > 1e-4


def test_fit_on_uint8_data_sees_a_fresh_dequantisation_at_every_batch(tmp_path):
    """Mapped back to the data, each batch's entries are k + u over 256 levels, with u
    spread uniformly over [0, 1) and new at every step; the model keeps levels = 256."""
    data = np.where(np.arange(100)[:, None] % 2 == 0, 10, 200).astype(np.uint8)
    batches = []
    loss = sdescore.losses.DenoisingScoreMatching(sdescore.get_sde("subvp"))

    def spied(score_fn, x0, generator=None):
        batches.append(x0.detach().clone())
        return loss(score_fn, x0, generator=generator)

    model = sdescore.fit(data, loss=spied, steps=4, batch_size=100, validation=0, seed=0,
                         progress=False)
    assert model.levels == 256
    values = torch.stack([model.datamap.to_data(b) * 256 for b in batches])  # (4, 100, 1)
    fractions = values - values.floor()
    assert set(values.floor().unique().tolist()) == {10.0, 200.0}
    assert abs(fractions.mean().item() - 0.5) < 0.06
    assert abs(fractions.std().item() - 1 / math.sqrt(12)) < 0.03
    assert not torch.equal(fractions[0].sort(0).values, fractions[1].sort(0).values)
    model.save(tmp_path / "model.pt")
    assert sdescore.load(tmp_path / "model.pt").levels == 256
    assert torch.isfinite(model.bits_per_dim(data[:5], seed=0)).all()


def test_levels_must_fit_the_data():
    counts = np.array([[0], [3], [7]] * 10)
    with pytest.raises(ValueError, match=r"data must be integers in \[0, 3\] to dequantise"):
        sdescore.fit(counts, levels=4, steps=1, progress=False)
    with pytest.raises(ValueError, match="levels must be >= 2"):
        sdescore.fit(counts, levels=1, steps=1, progress=False)
    model = sdescore.fit(counts, levels=8, steps=1, validation=0, progress=False)
    assert model.levels == 8


def test_flows_take_uint8_data_and_report_bits_per_dim_too(tmp_path):
    """The same contract for a flow: levels kept and saved, bits/dim of dequantised values
    is the NLL in bits plus log2(levels), and integer data average over their draws."""
    data = np.random.default_rng(0).integers(0, 256, (200, 2)).astype(np.uint8)
    flow = sdescore.baselines.fit_flow(data, "realnvp", steps=3, hidden=8, layers=1, seed=0,
                                       progress=False)
    assert flow.levels == 256
    flow.save(tmp_path / "flow.pt")
    assert sdescore.load(tmp_path / "flow.pt").levels == 256
    x = torch.tensor([[0.2, 0.7], [0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(flow.bits_per_dim(x),
                               sdescore.bits_per_dim(-flow.log_prob(x).double(), 2, levels=256))
    one, many = flow.bits_per_dim(data[:3], seed=0), flow.bits_per_dim(data[:3], draws=50, seed=0)
    assert torch.isfinite(many).all() and not torch.equal(one, many)
