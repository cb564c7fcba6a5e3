"""Choosing a purchase model by the backtest, deciding to refit, and the next-order date."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest

from pipelines.predictive import refit
from pipelines.predictive.backtest import choose, holdout_mae
from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.predictive.scoring import churn_risk, days_to_next_order
from pipelines.predictive.summary import CustomerSummary


def test_auto_picks_the_lowest_holdout_mae_and_says_so() -> None:
    choice = choose({"bgnbd": 0.52, "pnbd": 0.48, "mbgnbd": 0.50})
    assert choice is not None and choice.model == "pnbd"
    assert "Pareto/NBD 0.48" in choice.note and "BG/NBD 0.52" in choice.note


def test_auto_breaks_ties_towards_the_simpler_model_and_skips_failed_fits() -> None:
    tie = choose({"mbgnbd": 0.5, "bgnbd": 0.5})
    assert tie is not None and tie.model == "bgnbd"
    only = choose({"bgnbd": float("nan"), "mbgnbd": 0.7})
    assert only is not None and only.model == "mbgnbd" and only.note.endswith("(MBG/NBD 0.7)")
    assert choose({"bgnbd": float("nan")}) is None


def test_holdout_mae_is_the_mean_absolute_error() -> None:
    assert holdout_mae(np.array([0.5, 2.0, 1.0]), np.array([0.0, 3.0, 1.0])) == pytest.approx(0.5)


def _decide(stored_ll: float, refit_ll: float, age: int = 1) -> refit.RefitDecision:
    return refit.decide(
        label="BG/NBD",
        stored_ll=stored_ll,
        refit_ll=refit_ll,
        parameters=4,
        stored_on=date(2024, 1, 1),
        today=date.fromordinal(date(2024, 1, 1).toordinal() + age),
        significance=0.01,
        max_age_days=30,
    )


def test_refit_reuses_stored_parameters_unless_significantly_worse() -> None:
    # chi2 with 4 df: the 1% critical value of the statistic 2 * dLL is 13.28
    assert _decide(-1000.0, -1000.0 + 13.0 / 2).reuse
    worse = _decide(-1000.0, -1000.0 + 13.6 / 2)
    assert not worse.reuse and "significantly worse" in worse.note
    assert "likelihood ratio 13" in _decide(-1000.0, -993.5).note


def test_refit_when_the_stored_fit_is_too_old() -> None:
    old = _decide(-1000.0, -1000.0, age=31)
    assert not old.reuse and "31 days old" in old.note
    assert _decide(-1000.0, -1000.0, age=30).reuse


def test_churn_risk_bands() -> None:
    frame = pl.DataFrame({"p": [0.1, 0.3, 0.69, 0.7, 0.99, None]}, schema={"p": pl.Float64})
    got = frame.select(band=churn_risk(pl.col("p"), (0.3, 0.7)))["band"].to_list()
    assert got == ["high", "medium", "medium", "low", "low", None]


def test_next_order_date_is_the_first_day_with_even_odds_by_brute_force() -> None:
    model = BetaGeoModel.from_params(r=0.25, alpha=30.0, a=0.8, b=2.5)
    frame = pl.DataFrame(
        {
            "frequency": [0, 1, 3, 8, 20, 2],
            "recency": [0, 30, 200, 250, 270, 10],
            "T": [100, 300, 260, 255, 280, 400],
        }
    )
    summary = CustomerSummary.from_frame(frame)
    horizon = 365
    got = days_to_next_order(model, summary, horizon)[summary.inverse]
    days = np.arange(1, horizon + 1, dtype=np.float64)
    for i, row in enumerate(frame.iter_rows(named=True)):
        p = model.p_purchase_within(days, row["frequency"], row["recency"], row["T"])
        hits = np.nonzero(p >= 0.5)[0]
        expected = float(days[hits[0]]) if hits.size else math.nan
        if math.isnan(expected):
            assert math.isnan(got[i]), row
        else:
            assert got[i] == expected, row
    assert np.isnan(got).any() and (~np.isnan(got)).any()  # the sample covers both cases
