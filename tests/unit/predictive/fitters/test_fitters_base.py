"""Shared pieces: row collapsing and the convergence error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.predictive.fitters.base import ConvergenceError, FitResult, collapse, unique_rows

small_floats = st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.25, 30.0, -3.0, 1e-9])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(small_floats, small_floats, small_floats), min_size=1, max_size=60))
@pytest.mark.slow
def test_collapse_equals_numpy_unique_rows(rows: list[tuple[float, float, float]]) -> None:
    data = np.array(rows, dtype=float)
    ref_rows, ref_counts = np.unique(data, axis=0, return_counts=True)
    a, b, c, w = collapse(data[:, 0], data[:, 1], data[:, 2])
    np.testing.assert_array_equal(np.column_stack([a, b, c]), ref_rows)
    np.testing.assert_array_equal(w, ref_counts)
    assert w.dtype == np.int64
    (ua, ub, uc), group = unique_rows(data[:, 0], data[:, 1], data[:, 2])
    np.testing.assert_array_equal(np.column_stack([ua[group], ub[group], uc[group]]), data)


def test_collapse_sums_given_weights() -> None:
    x = np.array([1.0, 0.0, 1.0, 1.0])
    t = np.array([5.0, 0.0, 5.0, 6.0])
    ux, ut, w = collapse(x, t, weights=[0.5, 2.0, 1.5, 3.0])
    np.testing.assert_array_equal(ux, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(ut, [0.0, 5.0, 6.0])
    np.testing.assert_array_equal(w, [2.0, 2.0, 3.0])


def test_collapse_rejects_ragged_columns() -> None:
    with pytest.raises(ValueError, match="same length"):
        collapse(np.zeros(3), np.zeros(4))


def test_convergence_error_message() -> None:
    result = FitResult(float("nan"), 0, False, 1, 0.0, [])
    err = ConvergenceError("BG/NBD (BetaGeoModel)", "some reason", {"r": 0.25, "b": 2.0}, result)
    assert isinstance(err, RuntimeError)
    assert str(err) == (
        "BG/NBD (BetaGeoModel) fit did not converge: some reason (parameters reached: r=0.25, b=2)"
    )
    assert err.result is result and err.params == {"r": 0.25, "b": 2.0}
