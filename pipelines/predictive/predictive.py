"""Predictive CLV inside the marts build: BG/NBD + Gamma-Gamma fits, predictions, backtest.

These are the Python models of the SQL build (`pipelines/transform/marts.py`): each reads tables the
SQL models made, does numerics with `pipelines/predictive/fitters/`, and returns an Arrow table that
later SQL models join like any other.

    int_model_inputs (SQL)     -> int_model_fits (fit both models)
                               -> int_clv_predictions (p_alive, expected purchases, CLV)
    int_backtest_inputs (SQL)  -> int_backtest_predictions (fit on the calibration window,
                                  predict the holdout)

A fit that fails to converge, or ends with a parameter at its bound, stops the run before
anything is published. A history shorter than `predictive.min_history_days` is not fitted
(the prediction columns are null, with a warning in the manifest): a few months do not
identify how customers drop out. `predictive.enabled: false` turns the models off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.config import Config
from pipelines.errors import CustvalError
from pipelines.predictive.fitters.base import ConvergenceError, unique_rows
from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel

PythonModelFn = Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], pa.Table]


class ModelFitError(CustvalError):
    """A predictive model could not be fitted (did not converge, or hit a bound)."""


FIT_SCHEMA = {
    "fit": pl.String,
    "model": pl.String,
    "param": pl.String,
    "value": pl.Float64,
    "log_likelihood": pl.Float64,
    "customers_used": pl.Int64,
    "customers_excluded": pl.Int64,
    "converged": pl.Boolean,
    "iterations": pl.Int64,
    "seconds": pl.Float64,
}


def months_for(horizon_days: int, days_per_month: float) -> int:
    """Whole months of a horizon for the month-by-month discounted CLV (365 days -> 12)."""
    return max(1, round(horizon_days / days_per_month))


def monthly_rate(annual: float) -> float:
    return (1.0 + annual) ** (1.0 / 12.0) - 1.0


def _inputs(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    """Rows in customer order: the fits sum over rows, and a fixed order gives fixed bits."""
    return con.sql(f"select * from {table} order by customer_id").pl()


def _fit(label: str, fit: Callable[[], Any], customers: int, repeaters: int) -> Any:
    try:
        return fit()
    except ConvergenceError as exc:
        raise ModelFitError(
            f"{label}: {exc} -- {customers:,} customers, {repeaters:,} with repeat purchases. "
            "Nothing was published. With too little history, set predictive.enabled: false."
        ) from None
    except ValueError as exc:
        raise ModelFitError(f"{label}: {exc}") from None


@dataclass
class CustomerSummary:
    """The model inputs as arrays, with the distinct (frequency, recency, T) rows found once:
    the BG/NBD fit and every prediction work on those (far fewer than customers)."""

    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray
    unique: tuple[np.ndarray, np.ndarray, np.ndarray]
    inverse: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_frame(cls, inputs: pl.DataFrame) -> CustomerSummary:
        f, r, t = (inputs[c].to_numpy().astype(np.float64) for c in ("frequency", "recency", "T"))
        m = (
            inputs["monetary_value"].to_numpy().astype(np.float64)
            if "monetary_value" in inputs.columns
            else np.zeros_like(f)
        )
        unique, inverse = unique_rows(f, r, t)
        weights = np.bincount(inverse.reshape(-1), minlength=unique[0].shape[0]).astype(np.float64)
        uf, ur, ut = unique
        return cls(f, r, t, m, (uf, ur, ut), inverse.reshape(-1), weights)

    @property
    def customers(self) -> int:
        return int(self.frequency.shape[0])

    @property
    def repeaters(self) -> int:
        return int((self.frequency > 0).sum())


def _summary(inputs: pl.DataFrame | CustomerSummary) -> CustomerSummary:
    return inputs if isinstance(inputs, CustomerSummary) else CustomerSummary.from_frame(inputs)


def fit_bgnbd(inputs: pl.DataFrame | CustomerSummary, label: str) -> BetaGeoModel:
    s = _summary(inputs)
    uf, ur, uT = s.unique
    return _fit(
        f"BG/NBD fit ({label})",
        lambda: BetaGeoModel().fit(uf, ur, uT, weights=s.weights),
        s.customers,
        s.repeaters,
    )


def fit_gamma_gamma(inputs: pl.DataFrame | CustomerSummary, label: str) -> GammaGammaModel:
    s = _summary(inputs)
    return _fit(
        f"Gamma-Gamma fit ({label})",
        lambda: GammaGammaModel().fit(s.frequency, s.monetary_value),
        s.customers,
        s.repeaters,
    )


def fit_rows(fit: str, bg: BetaGeoModel, gg: GammaGammaModel | None) -> list[dict[str, Any]]:
    rows = []
    for model_name, model, excluded in (("bgnbd", bg, 0), ("gamma_gamma", gg, None)):
        if model is None:
            continue
        res = model.fit_result
        assert res is not None, f"{model_name} has not been fitted"
        if excluded is None:
            assert isinstance(model, GammaGammaModel)
            excluded = int(model.n_excluded or 0)
        for param, value in model.params.as_dict().items():
            rows.append(
                {
                    "fit": fit,
                    "model": model_name,
                    "param": param,
                    "value": float(value),
                    "log_likelihood": float(res.log_likelihood),
                    "customers_used": int(res.n_customers),
                    "customers_excluded": excluded,
                    "converged": bool(res.converged),
                    "iterations": int(res.iterations),
                    "seconds": float(res.seconds),
                }
            )
    return rows


def predict_customers(
    bg: BetaGeoModel,
    gg: GammaGammaModel,
    summary: CustomerSummary,
    *,
    horizons: list[int],
    days_per_month: float,
    monthly_discount_rate: float,
    margin: float,
) -> dict[str, np.ndarray]:
    """p_alive, expected purchases, expected order value and predicted CLV per horizon.

    The purchase model is evaluated once per distinct (frequency, recency, T) -- far fewer
    than customers -- and once per month up to the longest horizon; every horizon's CLV is a
    partial sum of the same discounted months. The CLV is the standard BG/NBD + Gamma-Gamma
    one (`fitters.gamma_gamma.customer_lifetime_value`, which a test holds this to).
    """
    (uf, ur, uT), inverse = summary.unique, summary.inverse
    months = {h: months_for(h, days_per_month) for h in horizons}
    longest = max(months.values())
    # One evaluation per month end (and per horizon that is not one); numpy's special
    # functions release the GIL, so the evaluations run on every core, results unchanged.
    points = sorted(
        {i * days_per_month for i in range(1, longest + 1)} | {float(h) for h in horizons}
    )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        values = pool.map(lambda t: bg.predict(t, uf, ur, uT), points)
        cumulative: dict[float, np.ndarray] = {
            0.0: np.zeros(uf.shape[0]),
            **dict(zip(points, values)),
        }
    discounted = np.zeros((longest + 1, uf.shape[0]))  # row i: discounted purchases of months 1..i
    for i in range(1, longest + 1):
        step = cumulative[i * days_per_month] - cumulative[(i - 1) * days_per_month]
        discounted[i] = discounted[i - 1] + step / (1.0 + monthly_discount_rate) ** i
    spend = gg.predict(summary.frequency, summary.monetary_value)
    out: dict[str, np.ndarray] = {
        "p_alive": bg.p_alive(uf, ur, uT)[inverse],
        "expected_avg_order_value": spend,
    }
    for h in horizons:
        out[f"expected_purchases_{h}"] = cumulative[float(h)][inverse]
        out[f"predicted_clv_{h}"] = discounted[months[h]][inverse] * spend * margin
    return out


class Predictive:
    """The Python models of one build; the fitted models are shared between them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.p = config.predictive
        self.models: tuple[BetaGeoModel, GammaGammaModel] | None = None
        self.summary: CustomerSummary | None = None
        self.backtest_model: BetaGeoModel | None = None
        self.warnings: list[str] = []
        self._frames: dict[str, pl.DataFrame] = {}

    def _read(self, con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
        """A model-input table, read once per build (the fits and the predictions share it)."""
        if table not in self._frames:
            self._frames[table] = _inputs(con, table)
        return self._frames[table]

    def _long_enough(self, inputs: pl.DataFrame, what: str) -> bool:
        """Dropout is not identifiable from a few months of history: skip (and say so) then."""
        history = int(cast(float, inputs["T"].max() or 0)) if inputs.height else 0
        if history >= self.p.min_history_days:
            return True
        self.warnings.append(
            f"{what} skipped: {history} days of purchase history, fewer than "
            f"predictive.min_history_days ({self.p.min_history_days})"
        )
        return False

    def python_models(self) -> dict[str, tuple[frozenset[str], PythonModelFn]]:
        return {
            "int_model_fits": (
                frozenset({"int_model_inputs", "int_backtest_inputs"}),
                self.model_fits,
            ),
            "int_clv_predictions": (
                frozenset({"int_model_inputs", "int_model_fits"}),
                self.predictions,
            ),
            "int_backtest_predictions": (
                frozenset({"int_backtest_inputs", "int_model_fits"}),
                self.backtest,
            ),
        }

    # int_model_fits ---------------------------------------------------------------------------

    def model_fits(self, con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> pa.Table:
        rows: list[dict[str, Any]] = []
        if self.p.enabled:
            inputs = self._read(con, "int_model_inputs")
            if self._long_enough(inputs, "predictions"):
                self.summary = CustomerSummary.from_frame(inputs)
                self.models = (
                    fit_bgnbd(self.summary, "snapshot"),
                    fit_gamma_gamma(self.summary, "snapshot"),
                )
                rows += fit_rows("snapshot", *self.models)
            calibration = self._read(con, "int_backtest_inputs")
            if self._long_enough(calibration, "backtest"):
                self.backtest_model = fit_bgnbd(calibration, "backtest calibration")
                rows += fit_rows("calibration", self.backtest_model, None)
        return pl.DataFrame(rows, schema=FIT_SCHEMA).to_arrow()

    # int_clv_predictions ----------------------------------------------------------------------

    def predictions(self, con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> pa.Table:
        inputs = self._read(con, "int_model_inputs")
        horizons = self.p.horizons_days
        columns: dict[str, Any] = {"customer_id": inputs["customer_id"]}
        if self.models is None or self.summary is None:
            nulls = pl.repeat(None, inputs.height, dtype=pl.Float64, eager=True)
            columns["p_alive"] = nulls
            columns["expected_avg_order_value"] = nulls
            for h in horizons:
                columns[f"expected_purchases_{h}"] = nulls
                columns[f"predicted_clv_{h}"] = nulls
            columns["predicted_clv_longest"] = nulls
            return pl.DataFrame(columns).to_arrow()
        bg, gg = self.models
        predicted = predict_customers(
            bg,
            gg,
            self.summary,
            horizons=horizons,
            days_per_month=self.p.days_per_month,
            monthly_discount_rate=monthly_rate(self.config.clv.discount_rate),
            margin=self.config.clv.gross_margin,
        )
        columns |= predicted
        columns["predicted_clv_longest"] = predicted[f"predicted_clv_{max(horizons)}"]
        return pl.DataFrame(columns).to_arrow()

    # int_backtest_predictions -----------------------------------------------------------------

    def backtest(self, con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> pa.Table:
        inputs = self._read(con, "int_backtest_inputs")
        predicted = (
            self.backtest_model.predict(
                float(self.p.backtest_holdout_days),
                inputs["frequency"].to_numpy().astype(float),
                inputs["recency"].to_numpy().astype(float),
                inputs["T"].to_numpy().astype(float),
            )
            if self.backtest_model is not None and inputs.height
            else np.full(inputs.height, np.nan)
        )
        return (
            inputs.select("customer_id", "frequency", "actual_purchases")
            .with_columns(
                pl.Series("predicted_purchases", predicted, dtype=pl.Float64).fill_nan(None)
            )
            .to_arrow()
        )
