"""The example downstream refresh: the warehouse's latest/ folder from the newest partitions."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipelines.bi import refresh_latest
from pipelines.errors import CustvalError


def test_refresh_latest_uses_the_newest_snapshot(tmp_path: Path) -> None:
    for day, customers in (("2024-01-01", 10), ("2024-01-02", 12)):
        part = tmp_path / "marts" / "kpi_summary" / f"snapshot_date={day}"
        part.mkdir(parents=True)
        pl.DataFrame({"customers": [customers]}).write_parquet(part / "part-0.parquet")
        rfm = tmp_path / "marts" / "customer_rfm" / f"snapshot_date={day}"
        rfm.mkdir(parents=True)
    events = [{"warehouse": str(tmp_path), "snapshot_date": "2024-01-02"}, {"warehouse": str(tmp_path), "snapshot_date": "2024-01-01"}]
    out = refresh_latest(events)
    assert out == {"warehouse": str(tmp_path), "snapshot_date": "2024-01-02", "tables": 2}
    assert json.loads((tmp_path / "latest" / "kpis.json").read_text()) == {"snapshot_date": "2024-01-02", "customers": 12}
    tables = json.loads((tmp_path / "latest" / "tables.json").read_text())
    assert tables["customer_rfm"].endswith("snapshot_date=2024-01-02")


def test_refresh_latest_needs_an_asset_event() -> None:
    with pytest.raises(CustvalError, match="no asset event names a warehouse"):
        refresh_latest([{}])
