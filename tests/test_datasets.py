"""The toy sets."""
import numpy as np
import pytest

from sdescore.datasets import TOYS, toy


@pytest.mark.parametrize("name", list(TOYS))
def test_toy_sets_are_finite_2d_and_seeded(name):
    x = toy(name, 500, seed=0)
    assert x.shape == (500, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.abs(x).max() < 6 and x.std() > 0.3  # spread out, within the plotting box
    np.testing.assert_array_equal(x, toy(name, 500, seed=0))
    assert not np.array_equal(x, toy(name, 500, seed=1))


def test_toy_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown toy data set 'spiral'; choose one of: 8gaussians"):
        toy("spiral", 10)
