"""Scoring customers with fitted models: p_alive, expected purchases, spend, predicted CLV,
the chance of being alive 90 days ahead with its churn-risk band, and the next-order date."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel
from pipelines.predictive.purchase_models import PurchaseModel
from pipelines.predictive.summary import CustomerSummary


def months_for(horizon_days: int, days_per_month: float) -> int:
    """Whole months of a horizon for the month-by-month discounted CLV (365 days -> 12)."""
    return max(1, round(horizon_days / days_per_month))


def monthly_rate(annual: float) -> float:
    return (1.0 + annual) ** (1.0 / 12.0) - 1.0


ALIVE_AHEAD_DAYS = 90
"""p_alive_90 is the probability of being alive this many days after the snapshot."""
EVEN_ODDS = 0.5


def days_to_next_order(
    model: PurchaseModel, summary: CustomerSummary, horizon_days: int
) -> np.ndarray:
    """Per distinct (frequency, recency, T) row: the smallest whole number of days d >= 1
    after the snapshot by which the model gives even odds that the customer has ordered again,
    P(a purchase in (T, T + d]) >= 1/2; NaN when that takes longer than `horizon_days`
    (the model does not expect a next order in the horizon; for BG/NBD that is the case of
    every customer with p_alive below 1/2).

    P(a purchase within t) rises with t, so a bisection over whole days per row finds d in
    log2(horizon) vectorised evaluations.
    """
    uf, ur, uT = summary.unique
    h = float(horizon_days)
    reached = np.asarray(model.p_purchase_within(h, uf, ur, uT)) >= EVEN_ODDS
    lo = np.zeros(uf.shape[0])  # P(within lo) < 1/2 (P(within 0) = 0)
    hi = np.full(uf.shape[0], h)  # P(within hi) >= 1/2 where reached
    while True:
        open_ = reached & (hi - lo > 1.0)
        if not np.any(open_):
            break
        mid = np.floor((lo + hi) / 2.0)
        p = np.asarray(model.p_purchase_within(np.where(open_, mid, h), uf, ur, uT))
        up = open_ & (p >= EVEN_ODDS)
        hi = np.where(up, mid, hi)
        lo = np.where(open_ & ~up, mid, lo)
    return np.where(reached, hi, np.nan)


def churn_risk(p_alive_90: pl.Expr, thresholds: tuple[float, float]) -> pl.Expr:
    """high below the first threshold of p_alive_90, medium below the second, else low
    (null where p_alive_90 is)."""
    high, medium = thresholds
    return (
        pl.when(p_alive_90 < high)
        .then(pl.lit("high"))
        .when(p_alive_90 < medium)
        .then(pl.lit("medium"))
        .when(p_alive_90.is_not_null())
        .then(pl.lit("low"))
        .otherwise(pl.lit(None, pl.String))
    )


def customer_scorer(
    bg: PurchaseModel,
    gg: GammaGammaModel | None,
    summary: CustomerSummary,
    *,
    horizons: list[int],
    days_per_month: float,
    monthly_discount_rate: float,
    margin_rate: np.ndarray | float,
    servicing_cost: float = 0.0,
) -> Callable[[slice], dict[str, np.ndarray]]:
    """A function scoring a slice of the customers of `summary` (p_alive, expected purchases,
    expected order value and predicted CLV per horizon), so a caller can hold one slice of
    the output at a time; `slice(None)` scores everyone at once. With `gg` None (its fit failed) the spend and CLV columns are NaN;
    the purchase columns stand on their own. The profit of a purchase is spend x margin_rate
    - servicing_cost.

    The purchase model is evaluated here, once per distinct (frequency, recency, T) -- far
    fewer than customers -- and once per month up to the longest horizon; every horizon's CLV
    is a partial sum of the same discounted months. The CLV is the standard BG/NBD +
    Gamma-Gamma one (`fitters.gamma_gamma.customer_lifetime_value`, which a test holds this to).
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
    per_row = {  # per distinct row; a customer's value is its row's
        "p_alive": bg.p_alive(uf, ur, uT),
        "p_alive_90": bg.p_alive_at(float(ALIVE_AHEAD_DAYS), uf, ur, uT),
        "days_to_next_order": days_to_next_order(bg, summary, max(horizons)),
    }

    def score(rows: slice) -> dict[str, np.ndarray]:
        index = inverse[rows]
        margin = margin_rate[rows] if isinstance(margin_rate, np.ndarray) else margin_rate
        spend = (
            gg.predict(summary.frequency[rows], summary.monetary_value[rows])
            if gg is not None
            else np.full(index.shape[0], np.nan)
        )
        profit = spend * margin - servicing_cost
        out = {name: values[index] for name, values in per_row.items()}
        out["expected_avg_order_value"] = spend
        for h in horizons:
            out[f"expected_purchases_{h}"] = cumulative[float(h)][index]
            out[f"predicted_clv_{h}"] = discounted[months[h]][index] * profit
        return out

    return score
