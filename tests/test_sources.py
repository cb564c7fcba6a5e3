"""Landing directories by arrival date: append-only ingestion, late orders, rebuilds, backfills."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from conftest import write_csv
from pipelines.context import RunContext
from pipelines.errors import SourceError
from pipelines.pipeline import run_all, run_dates

COLUMNS = ["order_id", "customer_id", "order_ts", "amount", "currency", "status", "updated_at"]
NO_PREDICTIONS = "predictive:\n  enabled: false\n"


def _order(oid: str, customer: str, day: str, amount: str, updated: str | None = None) -> tuple:
    return (oid, customer, f"{day}T10:00:00Z", amount, "USD", "completed", updated or f"{day}T10:00:00Z")


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing" / "orders"
    day1 = [_order(f"A{i}", f"C{i % 10}", "2024-03-01", "10.00") for i in range(40)]
    # Arrivals of Mar 2: Mar 2 orders, one order placed on Mar 1 that arrived late, and a
    # correction of A1 (amount 10 -> 99, a later updated_at).
    day2 = [_order(f"B{i}", f"C{i % 10}", "2024-03-02", "20.00") for i in range(40)]
    day2 += [_order("LATE1", "C3", "2024-03-01", "5.00"), _order("A1", "C1", "2024-03-01", "99.00", "2024-03-02T08:00:00Z")]
    day3 = [_order(f"D{i}", f"C{i % 10}", "2024-03-03", "30.00") for i in range(40)]
    for day, rows in (("2024-03-01", day1), ("2024-03-02", day2), ("2024-03-03", day3)):
        write_csv(root / f"date={day}" / "orders.csv", rows, COLUMNS)
    return root


def _ctx(landing: Path, wh: Path, day: str, tmp_path: Path, **kw) -> RunContext:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(NO_PREDICTIONS)
    return RunContext.create(source=str(landing), snapshot_date=day, warehouse=wh, config_path=str(cfg), **kw)


def _tables(wh: Path, day: str) -> dict[str, pl.DataFrame]:
    out = {}
    for table in sorted((wh / "marts").iterdir()):
        part = table / f"snapshot_date={day}"
        if part.exists():
            frame = pl.read_parquet(part)
            out[table.name] = frame.drop("seconds") if table.name == "model_fit" else frame
    return out


def _revenue(wh: Path, day: str) -> dict[str, float]:
    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / f"snapshot_date={day}")
    return dict(zip(rfm["customer_id"].to_list(), rfm["monetary_total"].to_list()))


def test_nightly_runs_ingest_arrivals_and_rebuild_for_late_orders(landing: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    first = run_all(_ctx(landing, wh, "2024-03-01", tmp_path))
    assert first["source_kind"] == "landing" and first["counts"]["rows_in"] == 40
    before = _revenue(wh, "2024-03-01")
    assert before["C1"] == pytest.approx(40.0) and before["C3"] == pytest.approx(40.0)  # 4 orders of 10 each

    second = run_all(_ctx(landing, wh, "2024-03-02", tmp_path))
    assert second["counts"]["rows_in"] == 42  # the batch of Mar 2 only
    assert second["rebuilt_snapshots"] == ["2024-03-01"]  # LATE1 was placed on Mar 1
    after = _revenue(wh, "2024-03-01")
    assert after["C3"] == pytest.approx(45.0)  # + the late order
    assert after["C1"] == pytest.approx(30.0 + 99.0)  # A1 replaced by its correction
    rebuilt = json.loads((wh / "runs" / "snapshot_date=2024-03-01" / "manifest.json").read_text())
    assert rebuilt["history_until"] == "2024-03-02" and rebuilt["ingested_by_this_run"] is False
    assert rebuilt["counts"]["rows_in"] == 40  # the counts of the batch that arrived on Mar 1

    third = run_all(_ctx(landing, wh, "2024-03-03", tmp_path))
    assert third["rebuilt_snapshots"] == []  # no late orders in Mar 3's arrivals
    raw = sorted(p.name for p in (wh / "raw" / "orders").iterdir())
    assert raw == ["ingest_date=2024-03-01", "ingest_date=2024-03-02", "ingest_date=2024-03-03"]
    assert len(list((wh / "quarantine" / "orders").iterdir())) == 3

    # A rerun of a past date reuses its landed batch and gives the same rows.
    published = {d: _tables(wh, d) for d in ("2024-03-01", "2024-03-02", "2024-03-03")}
    again = run_all(_ctx(landing, wh, "2024-03-02", tmp_path))
    assert again["files"] == second["files"]
    for day in published:
        for name, frame in _tables(wh, day).items():
            assert frame.equals(published[day][name]), (day, name)


def test_a_backfill_equals_the_nightly_runs(landing: Path, tmp_path: Path) -> None:
    nightly, backfilled = tmp_path / "nightly", tmp_path / "backfill"
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        run_all(_ctx(landing, nightly, day, tmp_path))
    results = run_dates(lambda d: _ctx(landing, backfilled, d.isoformat(), tmp_path), date(2024, 3, 1), date(2024, 3, 3))
    assert [e for _, _, e in results] == [None, None, None]
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        a, b = _tables(nightly, day), _tables(backfilled, day)
        assert set(a) == set(b) and len(a) >= 7
        for name in a:
            assert a[name].equals(b[name]), (day, name)
    # and rerunning the backfill changes nothing
    run_dates(lambda d: _ctx(landing, backfilled, d.isoformat(), tmp_path), date(2024, 3, 1), date(2024, 3, 3))
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        for name, frame in _tables(backfilled, day).items():
            assert frame.equals(_tables(nightly, day)[name]), (day, name)


def test_a_day_without_arrivals_is_a_clear_error(landing: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no arrivals for 2024-03-09 \(expected a folder date=2024-03-09\)"):
        run_all(_ctx(landing, tmp_path / "wh", "2024-03-09", tmp_path))


def test_source_kinds_are_told_apart(landing: Path, tmp_path: Path) -> None:
    from pipelines.sources import resolve

    assert resolve(str(landing)).kind == "landing"
    assert resolve(str(landing / "date=2024-03-01" / "orders.csv")).kind == "files"
    pg = resolve("postgresql://reader:secret@db:5432/shop", table="public.orders")
    assert pg.kind == "postgres" and pg.display == "postgresql://reader:***@db:5432/shop#public.orders"
    with pytest.raises(SourceError, match="needs --table"):
        resolve("postgresql://db/shop")
    with pytest.raises(SourceError, match="only for PostgreSQL"):
        resolve(str(landing), table="orders")
