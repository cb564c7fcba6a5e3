"""Segment transitions through `custval run` on three consecutive snapshot dates.

A small generated order history is run for the days D1, D2 and D3; for D3 one customer's
orders are gone from the source (a correction), so that customer disappears. The published
segment_transitions and segment_transition_summary of each date are checked against an
independent Polars computation from the published customer_rfm tables (and the expected
segment_changed_on carried from date to date). D2 is then run again after D3 is published:
its previous snapshot is still D1, so it gives the same rows.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.tools.generate import simulate_orders, write_orders

TABLES = ("customer_rfm", "segment_transitions", "segment_transition_summary")


def _run(source: Path, day: date, warehouse: Path, config: Path) -> dict[str, pl.DataFrame]:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    ctx = RunContext.create(
        source=str(source), snapshot_date=day, warehouse=warehouse, config_path=str(config)
    )
    manifest = run_all(ctx)
    assert manifest["status"] == "success", manifest.get("error")
    return {name: pl.read_parquet(Path(manifest["tables"][name]["path"])) for name in TABLES}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("segment_transitions")
    orders = simulate_orders(3_000, seed=7, start=date(2024, 1, 1), days=180)
    d3 = orders["order_ts"].max().date()  # type: ignore[union-attr]
    d1, d2 = d3 - timedelta(days=2), d3 - timedelta(days=1)
    full = write_orders(orders, base / "full" / "orders.csv", "csv")
    # a customer of D2 whose orders are all before D1: corrected away before D3's run
    purchases = orders.filter(pl.col("status") == "completed", pl.col("amount") >= 0)
    early = purchases.group_by("customer_id").agg(pl.col("order_ts").max().dt.date().alias("last"))
    gone = early.filter(pl.col("last") < d1).sort("customer_id")["customer_id"][0]
    corrected = write_orders(
        orders.filter(pl.col("customer_id") != gone), base / "corrected" / "orders.csv", "csv"
    )
    config = base / "config.yaml"
    config.write_text("predictive:\n  enabled: false\n")
    wh = base / "wh"
    first = _run(full, d1, wh, config)
    second = _run(full, d2, wh, config)
    third = _run(corrected, d3, wh, config)
    rerun = _run(full, d2, wh, config)  # after D3 is published
    return {
        "days": (d1, d2, d3),
        "gone": gone,
        "runs": (first, second, third),
        "rerun": rerun,
    }


def _expected_transitions(
    current: pl.DataFrame, previous: pl.DataFrame | None, day: date, previous_day: date | None
) -> pl.DataFrame:
    """From the published customer_rfm of both dates (and the previous expected rows)."""
    now = current.select("customer_id", "rfm_segment")
    if previous is None:
        before = pl.DataFrame(
            schema={"customer_id": pl.String, "previous_segment": pl.String, "since": pl.Date}
        )
    else:
        before = previous.select(
            "customer_id",
            pl.col("rfm_segment").alias("previous_segment"),
            pl.col("segment_changed_on").alias("since"),
        )
    joined = now.join(before, on="customer_id", how="left")
    changed = pl.col("previous_segment").is_not_null() & (
        pl.col("previous_segment") != pl.col("rfm_segment")
    )
    return joined.select(
        "customer_id",
        pl.lit(previous_day, pl.Date).alias("previous_snapshot_date"),
        "previous_segment",
        "rfm_segment",
        changed.alias("changed"),
        pl.when(changed | pl.col("previous_segment").is_null())
        .then(pl.lit(day))
        .otherwise(pl.col("since"))
        .alias("segment_changed_on"),
    ).sort("customer_id")


def _expected_summary(current: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    # money in exact ten-thousandths (the published sums are exact DECIMAL(18, 4) ones)
    money = (pl.col("monetary_total") * 10_000).round().cast(pl.Int64)
    now = current.select("customer_id", "rfm_segment", money.alias("revenue"))
    if previous is None:
        previous = current.clear()
    before = previous.select(
        "customer_id",
        pl.col("rfm_segment").alias("previous_segment"),
        money.alias("previous_revenue"),
    )
    both = now.join(before, on="customer_id", how="full", coalesce=True)
    cells = both.group_by("previous_segment", "rfm_segment").agg(
        customers=pl.len().cast(pl.Int64),
        revenue=pl.col("revenue").fill_null(0).sum() / 10_000,
        previous_revenue=pl.col("previous_revenue").fill_null(0).sum() / 10_000,
    )
    return cells.with_columns(
        customer_share=pl.col("customers") / pl.col("customers").sum().over("previous_segment")
    ).sort("previous_segment", "rfm_segment", nulls_last=False)


def _sorted(summary: pl.DataFrame) -> pl.DataFrame:
    return summary.select(
        "previous_segment",
        "rfm_segment",
        "customers",
        "revenue",
        "previous_revenue",
        "customer_share",
    ).sort("previous_segment", "rfm_segment", nulls_last=False)


def test_published_transitions_match_an_independent_computation(runs: dict[str, Any]) -> None:
    days = runs["days"]
    previous_rfm: pl.DataFrame | None = None
    previous_expected: pl.DataFrame | None = None
    previous_day: date | None = None
    for day, tables in zip(days, runs["runs"]):
        rfm = tables["customer_rfm"]
        expected = _expected_transitions(rfm, previous_expected, day, previous_day)
        published = tables["segment_transitions"]
        assert published["customer_id"].to_list() == rfm["customer_id"].sort().to_list()
        assert_frame_equal(published.select(expected.columns), expected)

        summary = tables["segment_transition_summary"]
        assert set(summary["previous_snapshot_date"].to_list()) == {previous_day}
        want = _expected_summary(rfm, previous_rfm)
        got = _sorted(summary)
        assert_frame_equal(got, want.select(got.columns), check_exact=True)
        previous_rfm, previous_expected, previous_day = rfm, expected, day


def test_the_runs_see_changes_new_kept_and_disappeared_customers(runs: dict[str, Any]) -> None:
    d1, d2, d3 = runs["days"]
    first, _, third = runs["runs"]
    assert (
        first["segment_transitions"]["previous_segment"].null_count()
        == first["segment_transitions"].height
    )  # D1 starts the history: everyone is new
    t3 = third["segment_transitions"]
    assert t3["changed"].any()  # some customers moved
    assert (t3["previous_segment"].is_null()).any()  # and some are new
    # unchanged since D1: the date is carried over two snapshots
    assert (t3["segment_changed_on"] == d1).any()
    assert set(t3["segment_changed_on"].to_list()) <= {d1, d2, d3}
    gone = runs["gone"]
    assert gone not in t3["customer_id"].to_list()
    lost = third["segment_transition_summary"].filter(pl.col("rfm_segment").is_null())
    assert lost["customers"].sum() == 1
    assert lost["revenue"].to_list() == [0.0] and lost["previous_revenue"].item() > 0


def test_a_rerun_of_a_date_after_a_later_one_gives_the_same_rows(runs: dict[str, Any]) -> None:
    _, second, _ = runs["runs"]
    for name in TABLES:
        assert runs["rerun"][name].equals(second[name]), name
    assert set(runs["rerun"]["segment_transitions"]["previous_snapshot_date"]) == {runs["days"][0]}
