"""Predictive CLV inside the marts build: purchase model + Gamma-Gamma fits, predictions, backtest.

These are the Python models of the SQL build (`pipelines/transform/marts.py`): each reads tables the
SQL models made, does numerics with `pipelines/predictive/fitters/`, and returns an Arrow table that
later SQL models join like any other.

    int_backtest_inputs (SQL)  -> int_model_fits (backtest: every candidate purchase model
    int_model_inputs (SQL)        fitted on the calibration window; `auto` picks the best;
                                  then the snapshot fits, refitted or reused)
                               -> int_clv_predictions (p_alive, p_alive_90, churn risk,
                                  next-order date, expected purchases, CLV)
                               -> int_backtest_predictions (each model's holdout predictions)

The purchase model is `predictive.model` (BG/NBD, Pareto/NBD or MBG/NBD:
`pipelines/predictive/purchase_models.py`), or `auto`: the one with the lowest backtest
holdout error (`pipelines/predictive/backtest.py`). With `predictive.refit: on_drift` the
last stored parameters keep scoring until a refit is significantly better
(`pipelines/predictive/refit.py`).

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

import itertools
from collections.abc import Callable, Iterable
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import duckdb
import numpy as np
import polars as pl
import polars.selectors as cs
import pyarrow as pa

from pipelines.config import Config
from pipelines.errors import CustvalError
from pipelines.predictive import refit
from pipelines.predictive.backtest import (
    Choice,
    backtest_frame,
    choose,
    holdout_mae,
    predicted_holdout,
)
from pipelines.predictive.carry_forward import STATUS_CARRIED, STATUS_REUSED, CarriedFit
from pipelines.predictive.fit_records import FIT_SCHEMA, ModelFitError, failed_rows, fit_rows
from pipelines.predictive.fitters import gamma_gamma
from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel
from pipelines.predictive.fitting import fit_bgnbd, fit_gamma_gamma, fit_purchase_model
from pipelines.predictive.purchase_models import LABELS, PURCHASE_MODELS, PurchaseModel
from pipelines.predictive.scoring import churn_risk, customer_scorer, monthly_rate
from pipelines.predictive.summary import CustomerSummary

if TYPE_CHECKING:
    from pipelines.transform.marts import PythonModel

__all__ = ["Predictive", "fit_bgnbd", "fit_gamma_gamma"]

PreviousFit = Callable[[Iterable[str]], CarriedFit | None]
_FREE_PARAMETERS = {"bgnbd": 4, "pnbd": 4, "mbgnbd": 4, "gamma_gamma": 3}
PREDICTION_BATCH = 1_000_000  # customers scored and handed to DuckDB at a time


def _inputs(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    """Rows in customer order: the fits sum over rows, and a fixed order gives fixed bits."""
    return con.sql(f"select * from {table} order by customer_id").pl()


def _with_note(rows: list[dict[str, Any]], note: str | None) -> list[dict[str, Any]]:
    if not note:
        return rows
    return [{**r, "note": f"{r['note']}; {note}" if r["note"] else note} for r in rows]


class Predictive:
    """The Python models of one build; the fitted models are shared between them.

    `previous_fit(models)` finds the last good fit of each of `models` in an earlier snapshot
    (for `predictive.on_failure: carry_forward` and `predictive.refit: on_drift`);
    `snapshot_date` dates the fresh fits.
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
        self.purchase_name: str = "bgnbd" if self.p.model == "auto" else self.p.model
        self.bg: PurchaseModel | None = None
        self.gg: GammaGammaModel | None = None
        self.summary: CustomerSummary | None = None
        self.choice: Choice | None = None
        self.backtest_predicted: dict[str, np.ndarray | None] = {}
        self.backtest_gg: GammaGammaModel | None = None
        self.warnings: list[str] = []
        self.failures: list[str] = []
        self._frames: dict[str, pl.DataFrame] = {}

    @property
    def degraded(self) -> bool:
        """A model failed: its predictions are null (or carried forward) in this snapshot."""
        return bool(self.failures)

    def _read(self, con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
        """A model-input table, read once for the Python models that share it in a row (the
        fits and the predictions); `_release` lets it go when the next one reads another."""
        if table not in self._frames:
            self._frames[table] = _inputs(con, table)
        return self._frames[table]

    def _release(self, table: str) -> None:
        """Memory: a customer-level input is as long as the customer base; hold one at a time."""
        self._frames.pop(table, None)

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

    def python_models(self) -> dict[str, PythonModel]:
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

    def _attempt(
        self, fit: Callable[[], Any], what: str, tolerated: bool = False
    ) -> tuple[Any, ModelFitError | None]:
        """Run one fit under predictive.on_failure: the model, or None and the error.

        A `tolerated` failure (a candidate of `auto`, the backtest's spend model) only leaves
        that model out; it neither stops nor degrades the run.
        """
        try:
            return fit(), None
        except ModelFitError as exc:
            if tolerated:
                return None, exc
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
                self.warnings.append(
                    f"{LABELS[name]} fit ({fit}) is at a boundary of its parameter space: "
                    f"{note} (fitted in its limit form; model_fit status boundary)"
                )

    def _backtest_fits(self, calibration: pl.DataFrame, fitted_on: str) -> list[dict[str, Any]]:
        """Each candidate purchase model (and Gamma-Gamma, for the value backtest) fitted on the
        calibration window; `auto` then picks the model with the lowest holdout MAE."""
        auto = self.p.model == "auto"
        summary = CustomerSummary.from_frame(calibration)
        holdout = float(self.p.backtest_holdout_days)
        actual = calibration["actual_purchases"].to_numpy().astype(np.float64)
        rows: list[dict[str, Any]] = []
        maes: dict[str, float] = {}
        for name in PURCHASE_MODELS if auto else (self.p.model,):
            model, error = self._attempt(
                partial(
                    fit_purchase_model,
                    name,
                    summary,
                    "backtest calibration",
                    self.p.max_iterations,
                ),
                "backtest fit",
                tolerated=auto,
            )
            if error is None:
                rows += fit_rows("calibration", {name: model}, fitted_on)
                self._warn_boundaries("backtest calibration", {name: model})
                predicted = predicted_holdout(model, summary, holdout)
                self.backtest_predicted[name] = predicted
                maes[name] = holdout_mae(predicted, actual)
            else:
                note = f"{LABELS[name]}'s backtest predictions are null in this snapshot"
                note += " (left out of the auto choice)" if auto else ""
                rows += failed_rows("calibration", error, note)
                self.backtest_predicted[name] = None
                self.warnings.append(f"{error}; {note}" + ("" if auto else "; run status degraded"))
        self.backtest_gg, error = self._attempt(
            lambda: fit_gamma_gamma(summary, "backtest calibration", self.p.max_iterations),
            "backtest spend fit",
            tolerated=True,
        )
        if error is None:
            rows += fit_rows("calibration", {"gamma_gamma": self.backtest_gg}, fitted_on)
        else:
            note = "model_backtest's predicted value and Gini are null in this snapshot"
            rows += failed_rows("calibration", error, note)
            self.warnings.append(f"{error}; {note}")
        if auto:
            self.choice = choose(maes)
            if self.choice is None:
                self.warnings.append(
                    "predictive.model auto: no purchase model could be backtested; "
                    "the snapshot is scored with BG/NBD"
                )
            else:
                self.purchase_name = self.choice.model
        return rows

    def _reuse_or_refit(
        self, name: str, fresh: Any, stored: CarriedFit | None, summary: CustomerSummary
    ) -> tuple[Any, list[dict[str, Any]], str | None]:
        """Under refit on_drift: the stored model and its rows (status reused), or the fresh fit
        with a note why it replaced the stored one. Without a stored fit: the fresh fit."""
        if stored is None or name not in stored.models or self.snapshot_date is None:
            return fresh, [], None
        old = stored.models[name]
        if name == "gamma_gamma":
            keep = (summary.frequency >= 1) & (summary.monetary_value > 0)
            stored_ll = float(
                cast(
                    float,
                    gamma_gamma.log_likelihood(
                        old.params, summary.frequency[keep], summary.monetary_value[keep]
                    ),
                )
            )
        else:
            uf, ur, uT = summary.unique
            stored_ll = cast(PurchaseModel, old).log_likelihood(uf, ur, uT, summary.weights)
        decision = refit.decide(
            label=LABELS[name],
            stored_ll=stored_ll,
            refit_ll=float(fresh.fit_result.log_likelihood),
            parameters=_FREE_PARAMETERS[name],
            stored_on=date.fromisoformat(stored.fitted_on[name]),
            today=date.fromisoformat(self.snapshot_date),
            significance=self.p.refit_significance,
            max_age_days=self.p.refit_max_age_days,
        )
        if decision.reuse:
            return old, stored.rows_of(name, STATUS_REUSED, decision.note), None
        return fresh, [], decision.note

    def _snapshot_fits(self, summary: CustomerSummary) -> list[dict[str, Any]]:
        fitted_on = self.snapshot_date or ""
        name = self.purchase_name
        stored = (
            self.previous_fit([name, "gamma_gamma"])
            if self.p.refit == "on_drift" and self.previous_fit is not None
            else None
        )
        initial = (
            stored.models[name].params.as_dict()
            if stored is not None and name in stored.models
            else None
        )
        bg, bg_error = self._attempt(
            lambda: fit_purchase_model(name, summary, "snapshot", self.p.max_iterations, initial),
            "snapshot fit",
        )
        gg, gg_error = self._attempt(
            lambda: fit_gamma_gamma(summary, "snapshot", self.p.max_iterations),
            "snapshot fit",
        )
        rows: list[dict[str, Any]] = []
        choice_note = self.choice.note if self.choice is not None else None
        for model_name, model in ((name, bg), ("gamma_gamma", gg)):
            if model is None:
                continue
            used, reused_rows, refit_note = self._reuse_or_refit(model_name, model, stored, summary)
            note = "; ".join(
                n for n in (choice_note if model_name == name else None, refit_note) if n
            )
            if reused_rows:
                rows += _with_note(reused_rows, note or None)
            else:
                rows += _with_note(
                    fit_rows("snapshot", {model_name: used}, fitted_on), note or None
                )
                self._warn_boundaries("snapshot", {model_name: used})
            if model_name == name:
                bg = used
            else:
                gg = used
        errors = [e for e in (bg_error, gg_error) if e is not None]
        carry = errors and self.p.on_failure == "carry_forward"
        carried = (
            self.previous_fit([name, "gamma_gamma"])
            if carry and self.previous_fit is not None
            else None
        )
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
            if error.model == "gamma_gamma":
                gg = model
            else:
                bg = model
        self.bg, self.gg = bg, gg
        return rows

    def model_fits(self, con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> pa.Table:
        rows: list[dict[str, Any]] = []
        backtest_rows: list[dict[str, Any]] = []
        if self.p.enabled:
            calibration = self._read(con, "int_backtest_inputs")
            backtest = self._long_enough(calibration, "backtest")
            cutoff = params.get("backtest_calibration_date", "")
            if self.p.model == "auto":  # the backtest decides which model scores the snapshot
                if backtest:
                    backtest_rows = self._backtest_fits(calibration, cutoff)
                    backtest = False
                else:
                    self.warnings.append(
                        "predictive.model auto: no backtest to choose by; the snapshot is "
                        "scored with BG/NBD"
                    )
            inputs = self._read(con, "int_model_inputs")
            if self._long_enough(inputs, "predictions"):
                self.summary = CustomerSummary.from_frame(inputs)
                rows += self._snapshot_fits(self.summary)
            if backtest:
                backtest_rows = self._backtest_fits(calibration, cutoff)
        rows += backtest_rows  # the snapshot's own fits first
        self._release("int_backtest_inputs")  # read again by the backtest predictions
        frame = pl.DataFrame(
            [{**r, "fitted_on": str(r["fitted_on"]) if r["fitted_on"] else None} for r in rows],
            schema={**FIT_SCHEMA, "fitted_on": pl.String},
        )
        return frame.with_columns(pl.col("fitted_on").str.to_date()).to_arrow()

    # int_clv_predictions ----------------------------------------------------------------------

    def predictions(
        self, con: duckdb.DuckDBPyConnection, params: dict[str, Any]
    ) -> pa.Table | pa.RecordBatchReader:
        inputs = self._read(con, "int_model_inputs")
        self._release("int_model_inputs")  # the last model to read it
        horizons = self.p.horizons_days
        columns: dict[str, Any] = {"customer_id": inputs["customer_id"]}
        if self.bg is None or self.summary is None:
            nulls = pl.repeat(None, inputs.height, dtype=pl.Float64, eager=True)
            for column in ("p_alive", "p_alive_90", "days_to_next_order"):
                columns[column] = nulls
            columns["expected_avg_order_value"] = nulls
            for h in horizons:
                columns[f"expected_purchases_{h}"] = nulls
                columns[f"predicted_clv_{h}"] = nulls
            columns["predicted_clv_longest"] = nulls
            if self.gg is not None and self.summary is not None:  # spend stands without BG/NBD
                s = self.summary
                columns["expected_avg_order_value"] = self.gg.predict(s.frequency, s.monetary_value)
            return self._finish(pl.DataFrame(columns), params)
        margins = con.sql(
            "select int_customer_margin.margin_rate from int_model_inputs "
            "inner join int_customer_margin using (customer_id) "
            "order by int_model_inputs.customer_id"
        ).fetchnumpy()["margin_rate"]
        if margins.shape[0] != inputs.height:
            raise CustvalError("int_customer_margin does not have one row per model input")
        score = customer_scorer(
            self.bg,
            self.gg,
            self.summary,
            horizons=horizons,
            days_per_month=self.p.days_per_month,
            monthly_discount_rate=monthly_rate(self.config.clv.discount_rate),
            margin_rate=np.asarray(margins, dtype=np.float64),
            servicing_cost=self.config.clv.servicing_cost_per_order,
        )
        ids = inputs["customer_id"]

        def scored(start: int) -> pa.Table:
            predicted = score(slice(start, start + PREDICTION_BATCH))
            columns = {"customer_id": ids.slice(start, PREDICTION_BATCH)} | predicted
            columns["predicted_clv_longest"] = predicted[f"predicted_clv_{max(horizons)}"]
            frame = pl.DataFrame(columns).with_columns(cs.float().fill_nan(None))
            return self._finish(frame, params)

        # One batch of customers at a time into DuckDB: at 100M orders, 31M customers' dozen
        # columns were held at once, beside DuckDB's budget, in the global phase's 12.5 GB peak.
        first = scored(0)
        rest = (
            batch
            for start in range(PREDICTION_BATCH, inputs.height, PREDICTION_BATCH)
            for batch in scored(start).to_batches()
        )
        return pa.RecordBatchReader.from_batches(
            first.schema, itertools.chain(first.to_batches(), rest)
        )

    def _finish(self, frame: pl.DataFrame, params: dict[str, Any]) -> pa.Table:
        """The churn-risk band and the next-order date from their numeric inputs."""
        snapshot = date.fromisoformat(str(params["snapshot_date"]))
        return (
            frame.with_columns(
                churn_risk=churn_risk(pl.col("p_alive_90"), self.p.churn_risk_thresholds),
                expected_next_order_date=pl.lit(snapshot)
                + pl.duration(days=pl.col("days_to_next_order").cast(pl.Int64)),
            )
            .drop("days_to_next_order")
            .to_arrow()
        )

    # int_backtest_predictions -----------------------------------------------------------------

    def backtest(self, con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> pa.Table:
        inputs = self._read(con, "int_backtest_inputs")
        self._release("int_backtest_inputs")
        return backtest_frame(
            inputs, self.backtest_predicted, self.backtest_gg, self.purchase_name
        ).to_arrow()
