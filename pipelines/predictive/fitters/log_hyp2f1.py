"""ln 2F1(a, b; a + 1; z) for 0 <= z < 1, robustly: the Gauss hypergeometric term of Pareto/NBD.

Pareto/NBD's likelihood, P(alive) and purchase probabilities all need tails of the integral
``int_u^inf (A + v)^-p (B + v)^-q dv``, which are 2F1(a, b; a + 1; z) with c = a + 1 (Fader &
Hardie 2005, "A Note on Deriving the Pareto/NBD Model and Related Expressions"). With c = a + 1
Euler's transformation gives

    ln 2F1(a, b; a + 1; z) = (1 - b) log1p(-z) + ln 2F1(1, a + 1 - b; a + 1; z),

and when a + 1 - b > 0 the right-hand 2F1 is a series of positive terms whose ratios are below
z: no cancellation, and its value lies in [1, 1/(1 - z)]. scipy evaluates it fast but returns
NaN or inf for some large parameters near z = 1 (``hyp2f1(1, 51, 1056, 0.99899)`` in scipy
1.17); there we sum the series ourselves, vectorised over the rows that need it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import hyp2f1

from pipelines.predictive.fitters.base import FloatArray

# The series is summed until the bound on what is left (last term * z / (1 - z)) is below
# _SERIES_RTOL of the sum; rows that would need more than _SERIES_MAX_TERMS terms (z within
# ~1e-6 of 1) get NaN, which the optimiser treats as a point to back away from.
_SERIES_RTOL = 1e-16
_SERIES_CHUNK = 512
_SERIES_MAX_TERMS = 2_000_000


def log_hyp2f1_c_is_a_plus_1(a: ArrayLike, b: ArrayLike, z: ArrayLike) -> FloatArray:
    """ln 2F1(a, b; a + 1; z), elementwise, for a > 0, b < a + 1 and 0 <= z < 1 (broadcast)."""
    a_arr, b_arr, z_arr = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, z)))
    if np.any(~(a_arr > 0)) or np.any(~(b_arr < a_arr + 1.0)):
        raise ValueError("log_hyp2f1_c_is_a_plus_1 needs a > 0 and b < a + 1")
    if np.any(~((z_arr >= 0) & (z_arr < 1))):
        raise ValueError("log_hyp2f1_c_is_a_plus_1 needs 0 <= z < 1")
    second = a_arr + 1.0 - b_arr  # > 0: every term of the series is positive
    with np.errstate(all="ignore"):
        positive = hyp2f1(1.0, second, a_arr + 1.0, z_arr)
    bad = ~np.isfinite(positive) | (positive < 1.0)
    if np.any(bad):
        positive = np.array(positive, dtype=np.float64)
        positive[bad] = positive_series(second[bad], a_arr[bad] + 1.0, z_arr[bad])
    return np.asarray((1.0 - b_arr) * np.log1p(-z_arr) + np.log(positive), dtype=np.float64)


def positive_series(b: FloatArray, c: FloatArray, z: FloatArray) -> FloatArray:
    """2F1(1, b; c; z) = sum_k (b)_k / (c)_k z^k for 0 < b < c, 0 <= z < 1, term by term.

    The terms shrink by (b + k) / (c + k) z < z, so after term t_k at most t_k z / (1 - z) is
    left; rows stop independently once that is negligible.
    """
    b, c, z = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (b, c, z))
    total = np.ones_like(z)
    term = np.ones_like(z)
    active = np.arange(z.size)
    k = 0
    tail_factor = z / (1.0 - z)
    while active.size and k < _SERIES_MAX_TERMS:
        ks = k + np.arange(_SERIES_CHUNK, dtype=np.float64)
        # ratios (b + j) / (c + j) z for the next chunk of terms, one row per active element
        ratio = (b[active, None] + ks) / (c[active, None] + ks) * z[active, None]
        terms = term[active, None] * np.cumprod(ratio, axis=1)
        total[active] += terms.sum(axis=1)
        term[active] = terms[:, -1]
        k += _SERIES_CHUNK
        done = term[active] * tail_factor[active] <= _SERIES_RTOL * total[active]
        active = active[~done]
    total[active] = np.nan
    return total
