"""Predictive CLV inside the marts build: BG/NBD + Gamma-Gamma fits, predictions, backtest.

These are the Python models of the SQL build (`pipelines/transform/marts.py`): each reads tables the
SQL models made, does numerics with `pipelines/predictive/fitters/`, and returns an Arrow table that
later SQL models join like any other.

    int_model_inputs (SQL)     -> int_model_fits (fit both models)
                               -> int_clv_predictions (p_alive, expected purchases, CLV)
    int_backtest_inputs (SQL)  -> int_backtest_predictions (fit on the calibration window,
                                  predict the holdout)

A model that cannot be fitted never takes the descriptive tables down
(`predictive.on_failure`): by default everything is published with that model's prediction
columns null, `model_fit` rows saying why, a manifest warning and the run `degraded`;
`carry_forward` scores with the last good fit of an earlier snapshot instead
(`pipelines/predictive/carry_forward.py`); `fail` stops the run before anything is published.
A fit that ends on a boundary of the parameter space (no spend heterogeneity, no dropout
signal) is a legitimate answer, fitted in its limit form and reported as such (status
`boundary`). A history shorter than `predictive.min_history_days` is not fitted (the prediction
columns are null, with a warning in the manifest): a few months do not identify how customers
drop out. `predictive.enabled: false` turns the models off.

Every CLV column has one profit basis: predicted CLV = discounted expected purchases x
(expected order value x the customer's margin rate - clv.servicing_cost_per_order), the margin
rate from `int_customer_margin` as for historical profit and the formula CLVs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import duckdb
import numpy as np
import polars as pl
import polars.selectors as cs
import pyarrow as pa

from pipelines.config import Config
from pipelines.errors import CustvalError
from pipelines.predictive.carry_forward import STATUS_CARRIED, CarriedFit
from pipelines.predictive.fit_records import (
    FIT_SCHEMA,
    ModelFitError,
    failed_rows,
    fit_rows,
)
from pipelines.predictive.fitters.base import ConvergenceError
from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel
from pipelines.predictive.scoring import monthly_rate, predict_customers
from pipelines.predictive.summary import CustomerSummary, as_summary

PythonModelFn = Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], pa.Table]


def _inputs(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    """Rows in customer order: the fits sum over rows, and a fixed order gives fixed bits."""
    return con.sql(f"select * from {table} order by customer_id").pl()


def _fit(label: str, model: str, fit: Callable[[], Any], customers: int, repeaters: int) -> Any:
    try:
        return fit()
    except ConvergenceError as exc:
        raise ModelFitError(
            f"{label}: {exc} -- {customers:,} customers, {repeaters:,} with repeat purchases",
            model,
            exc.params,
        ) from None
    except ValueError as exc:
        raise ModelFitError(f"{label}: {exc}", model) from None


def fit_bgnbd(
    inputs: pl.DataFrame | CustomerSummary, label: str, max_iterations: int = 2000
) -> BetaGeoModel:
    s = as_summary(inputs)
    uf, ur, uT = s.unique
    return _fit(
        f"BG/NBD fit ({label})",
        "bgnbd",
        lambda: BetaGeoModel().fit(uf, ur, uT, weights=s.weights, maxiter=max_iterations),
        s.customers,
        s.repeaters,
    )


def fit_gamma_gamma(
    inputs: pl.DataFrame | CustomerSummary, label: str, max_iterations: int = 2000
) -> GammaGammaModel:
    s = as_summary(inputs)
    return _fit(
        f"Gamma-Gamma fit ({label})",
        "gamma_gamma",
        lambda: GammaGammaModel().fit(s.frequency, s.monetary_value, maxiter=max_iterations),
        s.customers,
        s.repeaters,
    )


PreviousFit = Callable[[], CarriedFit | None]


class Predictive:
    """The Python models of one build; the fitted models are shared between them.

    `previous_fit` finds the last good fit of an earlier snapshot (for
    `predictive.on_failure: carry_forward`); `snapshot_date` dates the fresh fits.
    """

    def __init__(
        self,
        config: Config,
        snapshot_date: str | None = None,
        previous_fit: PreviousFit | None = None,
    ) -> None:
        self.config = config
        self.p = config.predictive
        self.snapshot_date = snapshot_date
        self.previous_fit = previous_fit
        self.bg: BetaGeoModel | None = None
        self.gg: GammaGammaModel | None = None
        self.summary: CustomerSummary | None = None
        self.backtest_model: BetaGeoModel | None = None
        self.warnings: list[str] = []
        self.failures: list[str] = []
        self._frames: dict[str, pl.DataFrame] = {}

    @property
    def degraded(self) -> bool:
        """A model failed: its predictions are null (or carried forward) in this snapshot."""
        return bool(self.failures)

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
                frozenset({"int_model_inputs", "int_model_fits", "int_customer_margin"}),
                self.predictions,
            ),
            "int_backtest_predictions": (
                frozenset({"int_backtest_inputs", "int_model_fits"}),
                self.backtest,
            ),
        }

    # int_model_fits ---------------------------------------------------------------------------

    def _attempt(self, fit: Callable[[], Any], what: str) -> tuple[Any, ModelFitError | None]:
        """Run one fit under predictive.on_failure: the model, or None and the error."""
        try:
            return fit(), None
        except ModelFitError as exc:
            if self.p.on_failure == "fail":
                raise ModelFitError(
                    f"{exc}. Nothing was published (predictive.on_failure: fail; the default "
                    "publish_null publishes every table with the predictions null).",
                    exc.model,
                    exc.params,
                ) from None
            self.failures.append(f"{what}: {exc}")
            return None, exc

    def _warn_boundaries(self, fit: str, models: dict[str, Any]) -> None:
        """A boundary optimum is a legitimate fit, but one a reader of the numbers should know of."""
        for name, model in models.items():
            note = getattr(model.fit_result, "boundary", None)
            if note:
                label = {"bgnbd": "BG/NBD", "gamma_gamma": "Gamma-Gamma"}[name]
                self.warnings.append(
                    f"{label} fit ({fit}) is at a boundary of its parameter space: {note} "
                    "(fitted in its limit form; model_fit status boundary)"
                )

    def _snapshot_fits(self, summary: CustomerSummary) -> list[dict[str, Any]]:
        fitted_on = self.snapshot_date or ""
        bg, bg_error = self._attempt(
            lambda: fit_bgnbd(summary, "snapshot", self.p.max_iterations), "snapshot fit"
        )
        gg, gg_error = self._attempt(
            lambda: fit_gamma_gamma(summary, "snapshot", self.p.max_iterations),
            "snapshot fit",
        )
        fresh = {name: m for name, m in (("bgnbd", bg), ("gamma_gamma", gg)) if m is not None}
        rows = fit_rows("snapshot", fresh, fitted_on)
        self._warn_boundaries("snapshot", fresh)
        errors = [e for e in (bg_error, gg_error) if e is not None]
        carry = errors and self.p.on_failure == "carry_forward"
        carried = self.previous_fit() if carry and self.previous_fit is not None else None
        for error in errors:
            if carried is not None and error.model in carried.models:
                model = carried.models[error.model]
                note = f"scored with the fit of {carried.fitted_on[error.model]}"
                rows += carried.rows_of(error.model, STATUS_CARRIED, f"today's fit failed: {error}")
            else:
                model = None
                note = "its prediction columns are null in this snapshot"
                if self.p.on_failure == "carry_forward":
                    note += " (no earlier good fit to carry forward)"
            rows += failed_rows("snapshot", error, note)
            self.warnings.append(f"{error}; {note}; run status degraded")
            if error.model == "bgnbd":
                bg = model
            else:
                gg = model
        self.bg, self.gg = bg, gg
        return rows

    def model_fits(self, con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> pa.Table:
        rows: list[dict[str, Any]] = []
        if self.p.enabled:
            inputs = self._read(con, "int_model_inputs")
            if self._long_enough(inputs, "predictions"):
                self.summary = CustomerSummary.from_frame(inputs)
                rows += self._snapshot_fits(self.summary)
            calibration = self._read(con, "int_backtest_inputs")
            if self._long_enough(calibration, "backtest"):
                self.backtest_model, error = self._attempt(
                    lambda: fit_bgnbd(calibration, "backtest calibration", self.p.max_iterations),
                    "backtest fit",
                )
                if error is None:
                    fresh = {"bgnbd": self.backtest_model}
                    rows += fit_rows(
                        "calibration", fresh, params.get("backtest_calibration_date", "")
                    )
                    self._warn_boundaries("backtest calibration", fresh)
                else:
                    note = "the backtest's predictions are null in this snapshot"
                    rows += failed_rows("calibration", error, note)
                    self.warnings.append(f"{error}; {note}; run status degraded")
        frame = pl.DataFrame(
            [{**r, "fitted_on": str(r["fitted_on"]) if r["fitted_on"] else None} for r in rows],
            schema={**FIT_SCHEMA, "fitted_on": pl.String},
        )
        return frame.with_columns(pl.col("fitted_on").str.to_date()).to_arrow()

    # int_clv_predictions ----------------------------------------------------------------------

    def predictions(self, con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> pa.Table:
        inputs = self._read(con, "int_model_inputs")
        horizons = self.p.horizons_days
        columns: dict[str, Any] = {"customer_id": inputs["customer_id"]}
        if self.bg is None or self.summary is None:
            nulls = pl.repeat(None, inputs.height, dtype=pl.Float64, eager=True)
            columns["p_alive"] = nulls
            columns["expected_avg_order_value"] = nulls
            for h in horizons:
                columns[f"expected_purchases_{h}"] = nulls
                columns[f"predicted_clv_{h}"] = nulls
            columns["predicted_clv_longest"] = nulls
            if self.gg is not None and self.summary is not None:  # spend stands without BG/NBD
                s = self.summary
                columns["expected_avg_order_value"] = self.gg.predict(s.frequency, s.monetary_value)
            return pl.DataFrame(columns).to_arrow()
        margins = con.sql(
            "select int_customer_margin.margin_rate from int_model_inputs "
            "inner join int_customer_margin using (customer_id) "
            "order by int_model_inputs.customer_id"
        ).fetchnumpy()["margin_rate"]
        if margins.shape[0] != inputs.height:
            raise CustvalError("int_customer_margin does not have one row per model input")
        predicted = predict_customers(
            self.bg,
            self.gg,
            self.summary,
            horizons=horizons,
            days_per_month=self.p.days_per_month,
            monthly_discount_rate=monthly_rate(self.config.clv.discount_rate),
            margin_rate=np.asarray(margins, dtype=np.float64),
            servicing_cost=self.config.clv.servicing_cost_per_order,
        )
        columns |= predicted
        columns["predicted_clv_longest"] = predicted[f"predicted_clv_{max(horizons)}"]
        return pl.DataFrame(columns).with_columns(cs.float().fill_nan(None)).to_arrow()

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
