"""Property-based attack on the public path fit -> log_prob / sample / save / load (issue 15):
over random shapes, dtypes and values, every call either raises a ValueError or TypeError
that names the argument, or gives finite output, and a saved model comes back exact."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sdescore

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_]


@st.composite
def tables(draw):
    """(n, d) arrays of a random dtype: finite values of any magnitude, sometimes NaN or inf,
    constant columns, few or no rows."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = (draw(st.integers(0, 40)), draw(st.integers(1, 3)))
    elements = None
    if np.dtype(dtype).kind == "f":
        info = np.finfo(dtype)
        elements = st.floats(-float(info.max) / 4, float(info.max) / 4, allow_nan=False,
                             width=info.bits)
    data = draw(hnp.arrays(dtype, shape, elements=elements))
    if np.dtype(dtype).kind == "f" and draw(st.booleans()):  # a small spread far from 0
        offset = draw(st.floats(-1e12, 1e12))
        spread = draw(hnp.arrays(np.float64, shape, elements=st.floats(-10, 10)))
        data = (offset + spread).astype(dtype)
    if data.size and np.dtype(dtype).kind == "f" and draw(st.integers(0, 4)) == 0:
        data.flat[draw(st.integers(0, data.size - 1))] = draw(st.sampled_from([np.nan, np.inf]))
    return data


def _names_the_argument(err: Exception, names) -> bool:
    return any(name in str(err) for name in names)


# derandomized, so that CI sees the same examples; no shrinking, which takes minutes here
@settings(max_examples=40, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=tables())
def test_fit_log_prob_sample_save_load_answer_or_name_the_problem(data, tmp_path_factory):
    try:
        model = sdescore.fit(data, steps=20, seed=0, progress=False)
    except (ValueError, TypeError) as err:
        assert _names_the_argument(err, ["data"]), err
        return
    rows = data[: min(len(data), 5)]
    if model.levels:  # uint8 data: the rows are integers, which log_prob does not read
        with pytest.raises(TypeError, match="use bits_per_dim"):
            model.log_prob(rows)
        rows = (rows + 0.5) / model.levels
    log_p = model.log_prob(rows, solver="rk4", steps=20)
    assert log_p.shape == (len(rows),) and torch.isfinite(log_p).all()
    draws = model.sample(4, "ode", solver="rk4", steps=20, seed=0)
    assert draws.shape == (4, data.shape[1]) and torch.isfinite(draws).all()
    path = tmp_path_factory.mktemp("model") / "model.pt"
    model.save(path)
    loaded = sdescore.load(path)
    torch.testing.assert_close(loaded.log_prob(rows, solver="rk4", steps=20), log_p,
                               rtol=0, atol=0)
    with pytest.raises((ValueError, TypeError), match="x"):
        model.log_prob(np.zeros((2, data.shape[1] + 1)))
