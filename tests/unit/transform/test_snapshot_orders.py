"""Staging: the snapshot's cut-off and the conversion into the reporting currency."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from pipelines.transform.snapshot_orders import stage_orders

pytestmark = pytest.mark.unit


def test_orders_are_cut_at_the_snapshot_end_converted_and_kept_in_source_order() -> None:
    ts = [datetime(2024, 3, d, 10, tzinfo=UTC) for d in (5, 1, 9, 3, 2)]
    accepted = pl.LazyFrame(
        {
            "order_id": ["a", "b", "c", "d", "e"],
            "order_ts": ts,
            "currency": ["EUR", "USD", "EUR", "GBP", "EUR"],
            "amount": [100.0, 10.0, 50.0, 20.0, 30.0],
            "cost": [40.0, None, 20.0, 5.0, None],
        }
    )
    rates = pl.DataFrame({"currency": ["USD", "EUR"], "rate": [1.0, 1.1]})
    staged = stage_orders(accepted, datetime(2024, 3, 6, tzinfo=UTC), rates).collect(
        engine="streaming"
    )
    assert staged["order_id"].to_list() == ["a", "b", "d", "e"]  # c is after the end
    assert staged.columns == ["order_id", "order_ts", "currency", "amount", "cost", "fx_rate"]
    assert staged["fx_rate"].to_list() == [1.1, 1.0, None, 1.1]  # no GBP rate: null
    assert staged["amount"].to_list() == pytest.approx([110.0, 10.0, None, 33.0], nan_ok=True)
    assert staged["cost"].to_list()[:2] == [pytest.approx(44.0), None]
