"""deepeft.statistics.mean: validation happens before any conversion or axis move (clear errors)."""

from __future__ import annotations

import numpy as np
import pytest

from deepeft import DeepEFTInputError
from deepeft import statistics as st


def test_mean_value_and_standard_error_along_an_axis():
    a = np.arange(12.0).reshape(3, 4)
    e = st.mean(a, axis=1)
    np.testing.assert_allclose(e.value, a.mean(1))
    np.testing.assert_allclose(e.stderr, a.std(1, ddof=1) / 2.0)
    e1 = st.mean(np.ones((1, 5)) * [[1, 2, 3, 4, 5]], axis=1)  # one row, five samples along axis 1
    assert e1.value.shape == (1,) and e1.value[0] == 3.0


@pytest.mark.parametrize(
    "samples, kw, match",
    [
        (["a", "b"], {}, "numeric array"),  # was a raw ValueError from the conversion
        (5.0, {}, "scalar"),  # was a raw AxisError from np.moveaxis
        (np.ones((3, 2)), {"axis": 5}, "axis must be an integer"),  # was a raw AxisError
        ([1.0, np.nan, 2.0], {}, "NaN"),
        ([], {}, "0 sample"),
        ([1.0], {}, "at least 2"),
    ],
)
def test_mean_bad_input_is_a_clear_error(samples, kw, match):
    with pytest.raises(DeepEFTInputError, match=match):
        st.mean(samples, **kw)
