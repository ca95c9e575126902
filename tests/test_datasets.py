"""The toy sets."""
import numpy as np
import pytest
import torch

from sdescore.datasets import TOYS, toy
from sdescore.metrics import energy_distance


@pytest.mark.parametrize("name", list(TOYS))
def test_a_seed_changes_the_draw_not_the_law(name):
    """Two seeds of one toy set are closer in energy distance than the set is to any other
    toy set; the same seed gives the same rows."""
    x = toy(name, 500, seed=0)
    np.testing.assert_array_equal(x, toy(name, 500, seed=0))
    same = energy_distance(torch.as_tensor(x), torch.as_tensor(toy(name, 500, seed=1)))
    others = [energy_distance(torch.as_tensor(x), torch.as_tensor(toy(other, 500, seed=1)))
              for other in TOYS if other != name]
    assert same < min(others) / 3
    assert not np.array_equal(x, toy(name, 500, seed=1))


def test_toy_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown toy data set 'spiral'; choose one of: 8gaussians"):
        toy("spiral", 10)
