"""The backtest: each candidate purchase model fitted on the calibration window predicts the
holdout that follows; `auto` picks the model that predicted it best.

The holdout error is the one `model_backtest` publishes (mean absolute error of the repeat
purchase days per customer, scope overall), so the choice can be checked from the table.
Predicted holdout *value* multiplies the predicted purchases by Gamma-Gamma's expected order
value (fitted on the calibration window too), for the Gini of predicted against actual value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel
from pipelines.predictive.purchase_models import LABELS, PURCHASE_MODELS, PurchaseModel
from pipelines.predictive.summary import CustomerSummary

BACKTEST_SCHEMA = {
    "model": pl.String,
    "selected": pl.Boolean,
    "customer_id": pl.String,
    "frequency": pl.Int64,
    "predicted_purchases": pl.Float64,
    "actual_purchases": pl.Int64,
    "predicted_value": pl.Float64,
    "actual_value": pl.Float64,
}


def predicted_holdout(
    model: PurchaseModel, summary: CustomerSummary, holdout_days: float
) -> np.ndarray:
    """Expected repeat purchase days in the holdout, per customer (distinct rows scored once)."""
    uf, ur, uT = summary.unique
    return np.asarray(model.predict(holdout_days, uf, ur, uT))[summary.inverse]


def holdout_mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - actual))) if predicted.size else float("nan")


@dataclass(frozen=True)
class Choice:
    """The model `auto` chose, and the evidence (holdout MAE of every model that fitted)."""

    model: str
    maes: dict[str, float]

    @property
    def note(self) -> str:
        shown = ", ".join(f"{LABELS[m]} {mae:.6g}" for m, mae in self.maes.items())
        return (
            f"chosen by predictive.model auto: lowest backtest holdout MAE of repeat purchase "
            f"days per customer ({shown})"
        )


def choose(maes: dict[str, float]) -> Choice | None:
    """The lowest finite MAE; ties go to the earlier model of PURCHASE_MODELS."""
    usable = {m: v for m, v in maes.items() if np.isfinite(v)}
    if not usable:
        return None
    best = min(usable, key=lambda m: (usable[m], PURCHASE_MODELS.index(m)))
    return Choice(best, dict(sorted(usable.items(), key=lambda kv: PURCHASE_MODELS.index(kv[0]))))


def backtest_frame(
    inputs: pl.DataFrame,
    predictions: dict[str, np.ndarray | None],
    gg: GammaGammaModel | None,
    selected: str | None,
) -> pl.DataFrame:
    """One row per model and calibration customer: predicted and actual holdout purchases
    and value (predicted null when that model's calibration fit failed)."""
    if gg is not None and inputs.height:
        spend = gg.predict(
            inputs["frequency"].to_numpy().astype(float),
            inputs["monetary_value"].to_numpy().astype(float),
        )
    else:
        spend = np.full(inputs.height, np.nan)
    frames = []
    base = inputs.select(
        pl.col("customer_id").cast(pl.String),
        pl.col("frequency").cast(pl.Int64),
        pl.col("actual_purchases").cast(pl.Int64),
        pl.col("actual_value").cast(pl.Float64),
    )
    for model, predicted in predictions.items():
        values = np.full(inputs.height, np.nan) if predicted is None else predicted
        frames.append(
            base.with_columns(
                model=pl.lit(model),
                selected=pl.lit(model == selected),
                predicted_purchases=pl.Series(values, dtype=pl.Float64).fill_nan(None),
                predicted_value=pl.Series(values * spend, dtype=pl.Float64).fill_nan(None),
            )
        )
    if not frames:
        return pl.DataFrame(schema=BACKTEST_SCHEMA)
    return pl.concat(frames).select(list(BACKTEST_SCHEMA))
