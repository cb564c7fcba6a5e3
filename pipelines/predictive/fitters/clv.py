"""BG/NBD + Gamma-Gamma discounted customer lifetime value (numerics only).

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis";
the same sum as lifetimes' ``GammaGammaFitter.customer_lifetime_value``. Re-exported from
``gamma_gamma`` (its historical home).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from pipelines.predictive.fitters.base import (
    FloatArray,
    PurchasePredictor,
    as_float_array,
    unique_rows,
)
from pipelines.predictive.fitters.bgnbd import validate_rft


class SpendPredictor(Protocol):
    """Anything that predicts a customer's expected average transaction value."""

    def predict(self, frequency: ArrayLike, monetary_value: ArrayLike) -> FloatArray: ...


def customer_lifetime_value(
    bgnbd: PurchasePredictor,
    gg: SpendPredictor,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    months: int,
    monthly_discount_rate: float,
    margin: float = 1.0,
    days_per_month: float = 30.0,
) -> FloatArray:
    """Discounted expected value of each customer over the next ``months`` months.

    Same sum as lifetimes' ``GammaGammaFitter.customer_lifetime_value`` (freq="D"):
    for i = 1..months,  [E X(T, T + i k) - E X(T, T + (i-1) k)] * E[M | x, m] * margin
    / (1 + d)^i,  with k = ``days_per_month`` time units per month (pass 30/7 if the purchase
    model was fitted in weeks). ``bgnbd`` is any model with the BetaGeoModel ``predict``
    signature (e.g. ParetoNBDModel) and ``gg`` any with GammaGammaModel's ``predict``. The purchase model is evaluated once per distinct
    (frequency, recency, T), so millions of customers cost little.
    """
    if int(months) != months or months < 0:
        raise ValueError("months must be a non-negative integer")
    if not monthly_discount_rate > -1.0:
        raise ValueError("monthly_discount_rate must be > -1")
    if not days_per_month > 0:
        raise ValueError("days_per_month must be positive")
    x, tx, t_cal = validate_rft(frequency, recency, T)
    m = as_float_array("monetary_value", monetary_value)
    if m.shape != x.shape:
        raise ValueError("monetary_value must have the same length as frequency")
    spend = gg.predict(x, m)

    (ux, utx, uT), group = unique_rows(x, tx, t_cal)
    discounted_purchases = np.zeros(ux.shape[0])
    previous = np.zeros(ux.shape[0])
    for i in range(1, int(months) + 1):  # loop over months, vectorised over customers
        cumulative = bgnbd.predict(i * days_per_month, ux, utx, uT)
        discounted_purchases += (cumulative - previous) / (1.0 + monthly_discount_rate) ** i
        previous = cumulative
    return margin * spend * discounted_purchases[group]
