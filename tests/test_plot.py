"""sdescore.plot (issue 17, item 5): each figure shows the numbers it is given."""
import math

import numpy as np
import pytest
import torch

import sdescore
from sdescore import plot

pytest.importorskip("matplotlib")


def test_image_grid_places_each_image_in_its_cell(tmp_path):
    images = np.zeros((5, 1, 2, 3), dtype=np.uint8)
    for i in range(5):
        images[i, 0, 1, 2] = 51 * i  # one lit pixel per image, brightness i / 5
    fig = plot.image_grid(images, columns=3)
    canvas = fig.axes[0].get_images()[0].get_array()
    assert canvas.shape == (2 * 3 + 1, 3 * 4 + 1)  # cells of (2 + 1) x (3 + 1), 1-pixel gaps
    for i in range(5):
        r, k = divmod(i, 3)
        assert canvas[1 + r * 3 + 1, 1 + k * 4 + 2] == pytest.approx(51 * i / 255)
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"images must have shape \(n, 1 or 3, h, w\)"):
        plot.image_grid(np.zeros((2, 4)))


def test_samples_against_data_draws_every_pair_of_columns():
    data, samples = np.random.default_rng(0).normal(size=(2, 50, 3))
    fig = plot.samples_against_data(samples, data)
    assert len(fig.axes) == 3  # pairs (0, 1), (0, 2), (1, 2)
    first = fig.axes[0].collections
    np.testing.assert_allclose(first[0].get_offsets(), data[:, [0, 1]])
    np.testing.assert_allclose(first[1].get_offsets(), samples[:, [0, 1]])
    np.testing.assert_allclose(fig.axes[2].collections[1].get_offsets(), samples[:, [1, 2]])
    with pytest.raises(ValueError, match="same d"):
        plot.samples_against_data(samples[:, :2], data)


def test_density_2d_spans_the_closed_form_log_density():
    """The exact score of N(0, diag(1, 4)): the contour levels reach from below the lattice's
    lowest log-density to above its peak, -log(2 pi * 1 * 2) nats at the origin."""
    gaussian = sdescore.datasets.GaussianMixture([[0.0, 0.0]], [[[1.0, 0.0], [0.0, 4.0]]])
    sde = sdescore.get_sde("vp")
    model = sdescore.ScoreModel(sde, gaussian.score_fn(sde), (2,))
    fig = plot.density_2d(model, extent=(-2, 2, -2, 2), grid=21)
    contour = next(c for c in fig.axes[0].collections if hasattr(c, "levels"))
    peak = -math.log(2 * math.pi * 2)
    lowest = peak - 0.5 * (4 + 4 / 4)  # at the corners (2, 2)
    assert contour.levels[-1] >= peak - 1e-3 > contour.levels[-2]
    assert contour.levels[0] <= lowest + 1e-3
    with pytest.raises(ValueError, match="needs a model of 2-D points"):
        plot.density_2d(sdescore.ScoreModel(sde, lambda x, t: -x, (3,)))


def test_training_history_plots_the_losses_and_marks_the_choice():
    x = torch.randn(300, 2)
    model = sdescore.fit(x, steps=40, log_every=10, seed=0, progress=False)
    fig = plot.training_history(model.history)
    lines = fig.axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(),
                               [r["loss"] for r in model.history if r["step"] > 0])
    np.testing.assert_allclose(lines[1].get_ydata(), [r["val_loss"] for r in model.history])
    chosen = next(r["step"] for r in model.history if r.get("selected"))
    assert lines[2].get_xdata()[0] == chosen
    with pytest.raises(ValueError, match="history is empty"):
        plot.training_history([])
