"""Segment transitions through `custval run` on three consecutive snapshot dates.

A small generated order history is run for the days D1, D2 and D3, in order, with
`rfm.transition_lookback_days: 2`: the transitions of D3 look back at D2 and D1. The published
segment_transitions and segment_transition_summary of D3 are checked against an independent
Polars computation from the published customer_rfm tables of the three dates. D3 is then run
alone in a fresh warehouse: its transitions are recomputed from its own orders, not read from
what was published, so it gives the same rows (the order-independence promise).
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
LOOKBACK = 2


pytestmark = pytest.mark.slow


def _run(source: Path, day: date, warehouse: Path, config: Path) -> dict[str, pl.DataFrame]:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    ctx = RunContext.create(
        source=str(source), snapshot_date=day, warehouse=warehouse, config_path=str(config)
    )
    manifest = run_all(ctx)
    assert manifest["status"] == "success", manifest.get("error")
    assert manifest["model_seconds"]["int_customer_lookback_states"] >= 0
    return {name: pl.read_parquet(Path(manifest["tables"][name]["path"])) for name in TABLES}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("segment_transitions")
    orders = simulate_orders(3_000, seed=7, start=date(2024, 1, 1), days=180)
    d3 = orders["order_ts"].max().date()  # type: ignore[union-attr]
    d1, d2 = d3 - timedelta(days=2), d3 - timedelta(days=1)
    source = write_orders(orders, base / "orders" / "orders.csv", "csv")
    config = base / "config.yaml"
    config.write_text(
        f"predictive:\n  enabled: false\nrfm:\n  transition_lookback_days: {LOOKBACK}\n"
    )
    wh = base / "wh"
    in_order = [_run(source, day, wh, config) for day in (d1, d2, d3)]
    alone = _run(source, d3, base / "fresh", config)  # nothing published before it
    return {"days": (d1, d2, d3), "runs": in_order, "alone": alone}


def _expected_transitions(rfm: list[pl.DataFrame], days: tuple[date, ...]) -> pl.DataFrame:
    """From the published customer_rfm of D1, D2 and D3 (the lookback days and D)."""
    segments = [frame.select("customer_id", "rfm_segment") for frame in rfm]
    # change days D2 and D3: the segment differs from the day before's, or a new customer
    last_change = pl.DataFrame(schema={"customer_id": pl.String, "segment_changed_on": pl.Date})
    for before, now, day in zip(segments, segments[1:], days[1:], strict=False):
        moved = now.join(before, on="customer_id", how="left", suffix="_before").filter(
            pl.col("rfm_segment_before").is_null()
            | (pl.col("rfm_segment_before") != pl.col("rfm_segment"))
        )
        last_change = pl.concat(
            [
                last_change.filter(~pl.col("customer_id").is_in(moved["customer_id"])),
                moved.select("customer_id", pl.lit(day).alias("segment_changed_on")),
            ]
        )
    previous = segments[-2].rename({"rfm_segment": "previous_segment"})
    joined = segments[-1].join(previous, on="customer_id", how="left")
    changed = pl.col("previous_segment").is_not_null() & (
        pl.col("previous_segment") != pl.col("rfm_segment")
    )
    return (
        joined.join(last_change, on="customer_id", how="left")
        .select(
            "customer_id",
            pl.lit(days[-2]).alias("previous_snapshot_date"),
            "previous_segment",
            "rfm_segment",
            changed.alias("changed"),
            "segment_changed_on",
        )
        .sort("customer_id")
    )


def _expected_summary(current: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    # money in exact ten-thousandths: the generated amounts are whole cents, so the published
    # DECIMAL(18, 2) monetary_total and its sums are exact (nothing was rounded)
    money = (pl.col("monetary_total") * 10_000).round().cast(pl.Int64)
    now = current.select("customer_id", "rfm_segment", money.alias("revenue"))
    before = previous.select(
        "customer_id",
        pl.col("rfm_segment").alias("previous_segment"),
        money.alias("previous_revenue"),
    )
    both = now.join(before, on="customer_id", how="full", coalesce=True)
    cells = both.group_by("previous_segment", "rfm_segment").agg(
        customers=pl.len().cast(pl.Int64),
        revenue=pl.col("revenue").fill_null(0).sum(),
        previous_revenue=pl.col("previous_revenue").fill_null(0).sum(),
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


def test_published_transitions_match_the_published_segments_of_the_three_dates(
    runs: dict[str, Any],
) -> None:
    days = runs["days"]
    rfm = [tables["customer_rfm"] for tables in runs["runs"]]
    last = runs["runs"][-1]
    expected = _expected_transitions(rfm, days)
    published = last["segment_transitions"]
    assert published["customer_id"].to_list() == rfm[-1]["customer_id"].sort().to_list()
    assert_frame_equal(published.select(expected.columns), expected)

    summary = last["segment_transition_summary"]
    assert set(summary["previous_snapshot_date"].to_list()) == {days[1]}
    got = _sorted(summary)
    assert got.schema["revenue"] == got.schema["previous_revenue"] == pl.Decimal(18, 2)
    want = _expected_summary(rfm[-1], rfm[-2])
    exact = got.with_columns(  # DECIMAL -> integer ten-thousandths: no float in between
        (pl.col(c) * 10_000).cast(pl.Int64) for c in ("revenue", "previous_revenue")
    )
    assert_frame_equal(exact, want.select(got.columns), check_exact=True)


def test_the_runs_see_changes_new_and_unchanged_customers(runs: dict[str, Any]) -> None:
    d1, d2, d3 = runs["days"]
    t3 = runs["runs"][-1]["segment_transitions"]
    assert t3["changed"].any()  # some customers moved on D3
    assert t3["previous_segment"].is_null().any()  # and some are new
    changed_on = set(t3["segment_changed_on"].to_list())
    assert {d2, d3, None} <= changed_on <= {d2, d3, None}  # within the 2-day lookback
    # the first date has a previous day too, recomputed from its own orders
    t1 = runs["runs"][0]["segment_transitions"]
    assert set(t1["previous_snapshot_date"]) == {d1 - timedelta(days=1)}
    assert t1["previous_segment"].is_not_null().any()
    # no customer disappears: both days come from the same orders
    summary = runs["runs"][-1]["segment_transition_summary"]
    assert summary["rfm_segment"].null_count() == 0


def test_a_date_built_alone_gives_the_same_rows_as_after_its_predecessors(
    runs: dict[str, Any],
) -> None:
    in_order = runs["runs"][-1]
    for name in TABLES:
        assert runs["alone"][name].equals(in_order[name]), name
