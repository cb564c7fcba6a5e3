"""Pieces shared by the fitters: the fit report, row collapsing and the optimiser wrapper.

The fitters keep numerics apart from I/O: they take plain arrays (anything ``np.asarray``
accepts, including Polars Series) and return arrays. Fitting works on log-parameters so the
optimiser never proposes a non-positive value, and on *collapsed* data (identical
(frequency, recency, T[, monetary]) rows merged into one row with an integer weight),
which turns millions of customers into a few thousand likelihood terms.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

FloatArray = NDArray[np.float64]

# Bounds of every log-parameter. The data are rescaled before fitting (time by its mean T,
# money by its mean), so a well-identified parameter lands far inside [1e-8, 1e8]; one that
# reaches a bound is a sign of a degenerate data set (e.g. nobody ever repeats).
LOG_BOUNDS: tuple[float, float] = (math.log(1e-8), math.log(1e8))
# How close (in log units) a log-parameter may come to a bound before we call it "at the bound".
_AT_BOUND_TOL = 1e-4
# Identification check after convergence (see _flat_directions).
_HESSIAN_STEP = 1e-4
_MIN_CURVATURE = 1e-6


@dataclass(frozen=True)
class FitResult:
    """What happened during a fit, kept next to the parameters for the run log."""

    log_likelihood: float
    """Total (weighted) log-likelihood at the optimum, in the caller's units of time/money."""
    n_customers: int
    """Weighted number of customers the likelihood was computed on."""
    converged: bool
    iterations: int
    seconds: float
    at_bounds: list[str] = field(default_factory=list)
    """Names of parameters that ended at an optimisation bound, or (for a boundary fit) that sit
    at their limit value (inf or 0). Empty for an interior fit."""
    boundary: str | None = None
    """``None`` for an interior optimum. For a fit whose likelihood is maximised on the boundary
    of the parameter space (e.g. no spend heterogeneity, nobody drops out) a short human note
    naming the limit model that was fitted instead, e.g. "no spend heterogeneity between
    customers: q, v -> inf with v/q = 12.3; ...". The parameters are then the limit model's."""


class ConvergenceError(RuntimeError):
    """The optimiser did not reach a usable interior optimum.

    Carries the parameters reached and the partial ``FitResult`` so callers can log them.
    """

    def __init__(
        self, model: str, reason: str, params: dict[str, float], result: FitResult | None = None
    ) -> None:
        self.model = model
        self.reason = reason
        self.params = params
        self.result = result
        shown = ", ".join(f"{k}={v:.6g}" for k, v in params.items())
        super().__init__(f"{model} fit did not converge: {reason} (parameters reached: {shown})")


class PurchasePredictor(Protocol):
    """Anything that predicts a customer's expected purchases in (T, T + t]."""

    def predict(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray: ...


def as_float_array(name: str, values: ArrayLike) -> FloatArray:
    """1-D float64 copy-free view of ``values``; rejects NaN/inf early with the column name."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_weights(weights: ArrayLike | None, n: int) -> FloatArray:
    """Weights default to one per row; they must be finite and non-negative."""
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = as_float_array("weights", weights)
    if w.shape != (n,):
        raise ValueError(f"weights has shape {w.shape}, expected ({n},)")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    return w


def unique_rows(*arrays: ArrayLike) -> tuple[tuple[np.ndarray, ...], NDArray[np.intp]]:
    """Distinct rows of the given columns and, for every input row, the index of its group.

    Same result as ``np.unique(np.column_stack(arrays), axis=0, return_inverse=True)`` (rows in
    lexicographic order) but several times faster on millions of rows: the 2-D version sorts
    structured rows element by element, whereas here each column is factorised with a 1-D
    ``np.unique`` and the codes are combined into one int64 key (mixed radix) that is uniqued.
    If that key could overflow we fall back to a lexsort of the codes.
    """
    if not arrays:
        raise ValueError("unique_rows needs at least one column")
    cols = [np.asarray(a) for a in arrays]
    n = cols[0].shape[0]
    for c in cols:
        if c.ndim != 1 or c.shape[0] != n:
            raise ValueError("all columns must be 1-D and of the same length")
    if n == 0:
        return tuple(c.copy() for c in cols), np.zeros(0, dtype=np.intp)

    cards: list[int] = []
    codes: list[NDArray[np.int64]] = []
    for c in cols:
        card, code = _factorise(c)
        cards.append(card)
        codes.append(code)

    if math.prod(cards) < 2**62:
        key = np.zeros(n, dtype=np.int64)
        for card, code in zip(cards, codes, strict=True):
            key *= card
            key += code
        _, first, group = np.unique(key, return_index=True, return_inverse=True)
        group = group.reshape(-1)
    else:  # pragma: no cover - needs astronomically many distinct values per column
        order = np.lexsort(codes[::-1])
        stacked = np.column_stack([c[order] for c in codes])
        starts = np.concatenate(([True], np.any(np.diff(stacked, axis=0) != 0, axis=1)))
        group = np.empty(n, dtype=np.intp)
        group[order] = np.cumsum(starts) - 1
        first = order[starts]
    return tuple(c[first] for c in cols), group


def _factorise(col: np.ndarray) -> tuple[int, NDArray[np.int64]]:
    """Order-preserving integer codes for one column and the number of possible codes.

    Whole-number columns with a modest range (counts, day offsets: the usual case) are coded
    as value - min without sorting; anything else goes through ``np.unique``.
    """
    if col.dtype.kind in "iub" or (
        col.dtype.kind == "f"
        and bool(np.all(np.isfinite(col)))
        and bool(np.all(col == np.floor(col)))
    ):
        lo, hi = col.min(), col.max()
        if float(hi) - float(lo) < 2**31:
            return int(hi - lo) + 1, (col - lo).astype(np.int64)
    u, inv = np.unique(col, return_inverse=True)
    return len(u), inv.reshape(-1).astype(np.int64)


def collapse(*arrays: ArrayLike, weights: ArrayLike | None = None) -> tuple[np.ndarray, ...]:
    """Merge identical rows of the given columns, returning ``(*unique_columns, weights)``.

    Rows are identical when every column matches exactly. Without ``weights`` the returned
    weights are integer counts (int64); with ``weights`` they are the per-group float sums.
    Unique rows come in lexicographic order of the columns (see ``unique_rows``).
    """
    uniq, group = unique_rows(*arrays)
    n_groups = uniq[0].shape[0]
    if weights is None:
        counts: np.ndarray = np.bincount(group, minlength=n_groups).astype(np.int64)
    else:
        w = check_weights(weights, group.shape[0])
        counts = np.bincount(group, weights=w, minlength=n_groups)
    return (*uniq, counts)


DEFAULT_MAX_ITERATIONS = 2000


def resolve_max_iterations(max_iterations: int | None, maxiter: int | None) -> int:
    """``max_iterations`` with the older ``maxiter`` spelling still accepted."""
    if max_iterations is not None and maxiter is not None and max_iterations != maxiter:
        raise ValueError("pass max_iterations or maxiter (its old name), not both")
    value = max_iterations if max_iterations is not None else maxiter
    value = DEFAULT_MAX_ITERATIONS if value is None else value
    if int(value) != value or value < 1:
        raise ValueError(f"max_iterations must be a positive integer, got {value}")
    return int(value)


def warm_start(
    initial: Mapping[str, float] | None,
    defaults: Mapping[str, float],
    *,
    divide: Mapping[str, float] | None = None,
    ignore: Collection[str] = (),
) -> list[float]:
    """The optimiser's start: ``defaults`` (name -> value, in the optimiser's units, in order),
    each replaced by ``initial[name] / divide[name]`` (e.g. alpha over the time scale) when that
    is finite and positive. Values that are not (a limit's 0 or inf, NaN) keep their default.
    Names outside ``defaults`` and ``ignore`` are an error, so a typo cannot cold-start quietly.
    """
    start = dict(defaults)
    if initial is None:
        return list(start.values())
    unknown = sorted(set(initial) - set(defaults) - set(ignore))
    if unknown:
        raise ValueError(f"unknown initial parameter(s) {unknown}; expected {sorted(defaults)}")
    for name in defaults:
        if name in initial:
            value = float(initial[name]) / (divide or {}).get(name, 1.0)
            if math.isfinite(value) and value > 0:
                start[name] = value
    return list(start.values())


@dataclass(frozen=True)
class Outcome:
    """Where the optimiser stopped and why; ``failure`` is None for a usable interior optimum."""

    params: FloatArray
    """Natural (positive) parameters reached, in the optimiser's (rescaled) units."""
    converged: bool
    iterations: int
    seconds: float
    at_bounds: list[str]
    flat: list[str]
    message: str
    out_of_iterations: bool
    """The iteration budget ran out: the optimiser did not finish, never a boundary optimum."""
    failure: str | None

    def error(
        self, model: str, names: Sequence[str], unscale: Callable[[FloatArray], FloatArray] | None
    ) -> ConvergenceError:
        """The ``ConvergenceError`` describing this (failed) outcome."""
        shown = self.params if unscale is None else unscale(self.params)
        reached = dict(zip(names, map(float, shown), strict=True))
        result = FitResult(
            float("nan"), 0, self.converged, self.iterations, self.seconds, self.at_bounds
        )
        return ConvergenceError(model, self.failure or "unknown failure", reached, result)


def optimise_log_params(
    names: Sequence[str],
    neg_mean_ll: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: Sequence[float],
    *,
    tol: float,
    maxiter: int,
) -> Outcome:
    """Minimise ``neg_mean_ll`` over positive parameters with L-BFGS-B on their logs.

    ``neg_mean_ll(params)`` must return the negative *mean* log-likelihood and its gradient with
    respect to the natural (positive) parameters; the chain rule to log-space is applied here.
    Using the mean rather than the sum keeps ``tol`` meaningful whatever the sample size.

    Never raises on a bad optimum: ``Outcome.failure`` says why the point reached is unusable
    (the optimiser reported failure, a parameter ended at a bound, or the likelihood is flat
    around the point). The models decide whether that is a boundary optimum or an error.
    """
    names = list(names)
    theta0 = np.log(np.asarray(x0, dtype=np.float64))
    lo, hi = LOG_BOUNDS
    theta0 = np.clip(theta0, lo + 1.0, hi - 1.0)

    def fun(theta: FloatArray) -> tuple[float, FloatArray]:
        p = np.exp(theta)
        f, g = neg_mean_ll(p)
        if not np.isfinite(f):
            # Let the line search back off instead of crashing on an overflowed trial point.
            return 1e300, np.zeros_like(theta)
        return float(f), np.asarray(g, dtype=np.float64) * p

    start = time.perf_counter()
    res = minimize(
        fun,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=[LOG_BOUNDS] * len(names),
        options={"maxiter": maxiter, "ftol": tol, "gtol": tol, "maxcor": 20},
    )
    seconds = time.perf_counter() - start
    theta = np.asarray(res.x, dtype=np.float64)
    params = np.exp(theta)
    at_bounds = [
        n
        for n, t in zip(names, theta, strict=True)
        if t <= lo + _AT_BOUND_TOL or t >= hi - _AT_BOUND_TOL
    ]
    message = str(res.message)
    converged = bool(res.success)
    out_of_iterations = not converged and (int(res.status) == 1 or int(res.nit) >= maxiter)
    if not converged and not out_of_iterations and "ABNORMAL" in message.upper():
        # L-BFGS-B gives up its line search when it cannot improve f in the last few digits;
        # that is an optimum, not a failure, if the projected gradient is already tiny.
        f, g = fun(theta)
        free = (theta > lo + _AT_BOUND_TOL) & (theta < hi - _AT_BOUND_TOL)
        converged = f < 1e300 and bool(np.all(np.abs(g[free]) < 1e-6))
    iterations = int(res.nit)
    flat: list[str] = []
    if converged and not at_bounds:
        flat = _flat_directions(fun, theta, names)
    failure: str | None = None
    if not converged:
        failure = f"optimiser stopped after {iterations} iterations: {message}"
    elif at_bounds:
        failure = (
            f"parameter(s) {', '.join(at_bounds)} ended at the optimisation bounds "
            f"[{math.exp(lo):.0e}, {math.exp(hi):.0e}] (on rescaled data); the data do not "
            "identify the model (e.g. too few repeat customers)"
        )
    elif flat:
        failure = (
            f"the likelihood is flat in {', '.join(flat)} at the point reached (Hessian "
            f"eigenvalue below {_MIN_CURVATURE:g}): the data do not identify the model "
            "(e.g. no or almost no repeat customers)"
        )
    return Outcome(
        params, converged, iterations, seconds, at_bounds, flat, message, out_of_iterations, failure
    )


def _flat_directions(
    fun: Callable[[FloatArray], tuple[float, FloatArray]], theta: FloatArray, names: list[str]
) -> list[str]:
    """Parameters along which the mean negative log-likelihood has (almost) no curvature.

    A stopped optimiser is not enough: when nobody repeats, BG/NBD's likelihood keeps creeping
    towards 1 as r -> 0 (or alpha -> inf) and is exactly flat in a and b, so L-BFGS-B stops on
    its f-tolerance well inside the bounds. The Hessian (central differences of the analytic
    gradient, in log-parameters, per customer) then has eigenvalues ~1e-10 or 0, whereas
    identified fits, even on 100 customers, have all eigenvalues above ~1e-3.
    """
    k = theta.size
    hess = np.empty((k, k))
    for i in range(k):
        step = np.zeros(k)
        step[i] = _HESSIAN_STEP
        hess[:, i] = (fun(theta + step)[1] - fun(theta - step)[1]) / (2 * _HESSIAN_STEP)
    eigval, eigvec = np.linalg.eigh(0.5 * (hess + hess.T))
    weak = eigval < _MIN_CURVATURE
    if not np.any(weak):
        return []
    loading = np.sum(eigvec[:, weak] ** 2, axis=1)
    return [n for n, share in zip(names, loading, strict=True) if share > 0.1]
