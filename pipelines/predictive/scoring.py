"""Scoring customers with fitted models: p_alive, expected purchases, spend, predicted CLV."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.predictive.fitters.gamma_gamma import GammaGammaModel
from pipelines.predictive.summary import CustomerSummary


def months_for(horizon_days: int, days_per_month: float) -> int:
    """Whole months of a horizon for the month-by-month discounted CLV (365 days -> 12)."""
    return max(1, round(horizon_days / days_per_month))


def monthly_rate(annual: float) -> float:
    return (1.0 + annual) ** (1.0 / 12.0) - 1.0


def predict_customers(
    bg: BetaGeoModel,
    gg: GammaGammaModel | None,
    summary: CustomerSummary,
    *,
    horizons: list[int],
    days_per_month: float,
    monthly_discount_rate: float,
    margin_rate: np.ndarray | float,
    servicing_cost: float = 0.0,
) -> dict[str, np.ndarray]:
    """p_alive, expected purchases, expected order value and predicted CLV per horizon.

    With `gg` None (its fit failed) the spend and CLV columns are NaN; the purchase columns
    stand on their own. The profit of a purchase is spend x margin_rate - servicing_cost.

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
    spend = (
        gg.predict(summary.frequency, summary.monetary_value)
        if gg is not None
        else np.full(summary.customers, np.nan)
    )
    profit = spend * margin_rate - servicing_cost
    out: dict[str, np.ndarray] = {
        "p_alive": bg.p_alive(uf, ur, uT)[inverse],
        "expected_avg_order_value": spend,
    }
    for h in horizons:
        out[f"expected_purchases_{h}"] = cumulative[float(h)][inverse]
        out[f"predicted_clv_{h}"] = discounted[months[h]][inverse] * profit
    return out
