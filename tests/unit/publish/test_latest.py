"""The example downstream refresh: the warehouse's latest/ folder from the newest complete snapshot."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.errors import CustvalError
from pipelines.publish.latest import refresh_latest
from pipelines.storage import snapshots
from pipelines.storage.jsonfile import write_json


def _publish(warehouse: Path, day: str, customers: int, commit: bool = True) -> None:
    snapshot = date.fromisoformat(day)
    version = snapshots.new_version(warehouse, snapshot, f"run-{day}")
    tables = {}
    for table in ("kpi_summary", "customer_rfm"):
        (version / "marts" / table).mkdir(parents=True)
        pl.DataFrame({"customers": [customers]}).write_parquet(
            version / "marts" / table / "part-0.parquet"
        )
        tables[table] = {"path": str(warehouse / "marts" / table / f"snapshot_date={day}")}
    write_json(version / "runs" / "manifest.json", {"snapshot_date": day, "tables": tables})
    if commit:
        snapshots.commit(warehouse, snapshot, version)


def test_refresh_latest_uses_the_newest_complete_snapshot(tmp_path: Path) -> None:
    _publish(tmp_path, "2024-01-01", 10)
    _publish(tmp_path, "2024-01-02", 12)
    _publish(tmp_path, "2024-01-03", 99, commit=False)  # still being written: not a snapshot yet
    (
        tmp_path / "marts" / "kpi_summary" / "snapshot_date=2024-01-04"
    ).mkdir()  # a stray partition dir
    events = [
        {"warehouse": str(tmp_path), "snapshot_date": "2024-01-02"},
        {"warehouse": str(tmp_path), "snapshot_date": "2024-01-01"},
    ]
    out = refresh_latest(events)
    assert out == {"warehouse": str(tmp_path), "snapshot_date": "2024-01-02", "tables": 2}
    assert json.loads((tmp_path / "latest" / "kpis.json").read_text()) == {
        "snapshot_date": "2024-01-02",
        "customers": 12,
    }
    tables = json.loads((tmp_path / "latest" / "tables.json").read_text())
    assert tables["customer_rfm"].endswith("snapshot_date=2024-01-02")


def test_refresh_latest_needs_an_asset_event() -> None:
    with pytest.raises(CustvalError, match="no asset event names a warehouse"):
        refresh_latest([{}])


def test_latest_kpis_give_decimal_money_as_json_numbers(tmp_path: Path) -> None:
    snapshot = date(2024, 1, 1)
    version = snapshots.new_version(tmp_path, snapshot, "run-1")
    (version / "marts" / "kpi_summary").mkdir(parents=True)
    pl.DataFrame(
        {"customers": [3], "net_revenue": pl.Series(["1234.56"]).cast(pl.Decimal(18, 2))}
    ).write_parquet(version / "marts" / "kpi_summary" / "part-0.parquet")
    path = str(tmp_path / "marts" / "kpi_summary" / "snapshot_date=2024-01-01")
    write_json(
        version / "runs" / "manifest.json",
        {"snapshot_date": "2024-01-01", "tables": {"kpi_summary": {"path": path}}},
    )
    snapshots.commit(tmp_path, snapshot, version)
    refresh_latest([{"warehouse": str(tmp_path), "snapshot_date": "2024-01-01"}])
    kpis = json.loads((tmp_path / "latest" / "kpis.json").read_text())
    assert kpis == {"snapshot_date": "2024-01-01", "customers": 3, "net_revenue": 1234.56}
