"""Shared fixtures for the fitter tests: the CDNOW sample and its lifetimes-style summary."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from conftest import SHARED, require

CDNOW_DIR = SHARED / "data" / "cdnow"
CDNOW_SAMPLE = CDNOW_DIR / "CDNOW_sample.txt"
CALIBRATION_END = dt.date(1997, 9, 30)


@pytest.fixture(scope="session")
def cdnow_transactions() -> pl.DataFrame:
    """One row per transaction of the 2,357-customer CDNOW sample (customer = sample id)."""
    require(
        CDNOW_SAMPLE.is_file(),
        f"CDNOW sample not found at {CDNOW_SAMPLE} (shared data not mounted)",
    )
    # Whitespace separated with leading blanks and CRLF line ends: split the text ourselves.
    fields = np.array(CDNOW_SAMPLE.read_text().split()).reshape(-1, 5)
    return pl.DataFrame(
        {
            "customer": fields[:, 1].astype(np.int64),
            "date": fields[:, 2],
            "cds": fields[:, 3].astype(np.int64),
            "value": fields[:, 4].astype(np.float64),
        }
    ).with_columns(pl.col("date").str.strptime(pl.Date, "%Y%m%d"))


def cdnow_summary(
    transactions: pl.DataFrame, *, period_end: dt.date, merge_same_day: bool = True
) -> pl.DataFrame:
    """lifetimes-style (frequency, recency, T, monetary_value) summary in days.

    Transactions after the calibration end (1997-09-30) are dropped; ``period_end`` is the date
    T is measured to (1997-09-30 is lifetimes' ``observation_period_end`` convention,
    1997-10-01 would be "end of the last day"). With ``merge_same_day`` a customer's
    transactions on one day are one purchase whose value is their sum; without it every
    transaction row is a purchase (monetary_value is then left out).
    """
    cal = transactions.filter(pl.col("date") <= CALIBRATION_END)
    if merge_same_day:
        cal = cal.group_by("customer", "date").agg(pl.col("value").sum())
    cal = cal.with_columns(first=pl.col("date").min().over("customer"))
    aggs = [
        (pl.len() - 1).alias("frequency"),
        (pl.col("date").max() - pl.col("first").first()).dt.total_days().alias("recency"),
        (pl.lit(period_end) - pl.col("first").first()).dt.total_days().alias("T"),
    ]
    if merge_same_day:
        # Mean per-day spend over the repeat purchase days; 0 when there are none.
        aggs.append(
            pl.col("value")
            .filter(pl.col("date") != pl.col("first"))
            .mean()
            .fill_null(0.0)
            .alias("monetary_value")
        )
    return cal.group_by("customer").agg(aggs).sort("customer")


@pytest.fixture(scope="session")
def cdnow_summary_days(cdnow_transactions: pl.DataFrame) -> pl.DataFrame:
    """The reference summary: same-day transactions merged, T measured to 1997-09-30."""
    return cdnow_summary(cdnow_transactions, period_end=CALIBRATION_END, merge_same_day=True)


@pytest.fixture(scope="session")
def build_cdnow_summary(cdnow_transactions: pl.DataFrame):
    """``cdnow_summary`` bound to the sample, for tests that compare summary conventions."""

    def build(*, period_end: dt.date, merge_same_day: bool = True) -> pl.DataFrame:
        return cdnow_summary(
            cdnow_transactions, period_end=period_end, merge_same_day=merge_same_day
        )

    return build
