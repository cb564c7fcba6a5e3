"""Landing directories by arrival date: append-only ingestion, late orders, rebuilds, backfills."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO, write_csv

from pipelines.context import RunContext
from pipelines.errors import SourceError
from pipelines.run.pipeline import run_all, run_dates

COLUMNS = ["order_id", "customer_id", "order_ts", "amount", "currency", "status", "updated_at"]
NO_PREDICTIONS = "predictive:\n  enabled: false\n"


pytestmark = pytest.mark.slow


def _order(oid: str, customer: str, day: str, amount: str, updated: str | None = None) -> tuple:
    return (
        oid,
        customer,
        f"{day}T10:00:00Z",
        amount,
        "USD",
        "completed",
        updated or f"{day}T10:00:00Z",
    )


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return _write_landing(tmp_path / "landing" / "orders")


@pytest.fixture(scope="module")
def in_order(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse of the three days run in order, every batch on time: what the tests of
    backfills, parallel runs and gaps compare with (built once for the module)."""
    root = tmp_path_factory.mktemp("in_order")
    source = _write_landing(root / "landing" / "orders")
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        run_all(_ctx(source, root / "wh", day, root))
    return root / "wh"


def _write_landing(root: Path) -> Path:
    day1 = [_order(f"A{i}", f"C{i % 10}", "2024-03-01", "10.00") for i in range(40)]
    # Arrivals of Mar 2: Mar 2 orders, one order placed on Mar 1 that arrived late, and a
    # correction of A1 (amount 10 -> 99, a later updated_at).
    day2 = [_order(f"B{i}", f"C{i % 10}", "2024-03-02", "20.00") for i in range(40)]
    day2 += [
        _order("LATE1", "C3", "2024-03-01", "5.00"),
        _order("A1", "C1", "2024-03-01", "99.00", "2024-03-02T08:00:00Z"),
    ]
    day3 = [_order(f"D{i}", f"C{i % 10}", "2024-03-03", "30.00") for i in range(40)]
    for day, rows in (("2024-03-01", day1), ("2024-03-02", day2), ("2024-03-03", day3)):
        write_csv(root / f"date={day}" / "orders.csv", rows, COLUMNS)
    return root


def _ctx(landing: Path, wh: Path, day: str, tmp_path: Path, **kw) -> RunContext:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(NO_PREDICTIONS)
    return RunContext.create(
        source=str(landing), snapshot_date=day, warehouse=wh, config_path=str(cfg), **kw
    )


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


@pytest.mark.slow
def test_nightly_runs_ingest_arrivals_and_rebuild_for_late_orders(
    landing: Path, tmp_path: Path
) -> None:
    wh = tmp_path / "wh"
    first = run_all(_ctx(landing, wh, "2024-03-01", tmp_path))
    assert first["source_kind"] == "landing" and first["counts"]["rows_in"] == 40
    before = _revenue(wh, "2024-03-01")
    assert before["C1"] == pytest.approx(40.0) and before["C3"] == pytest.approx(
        40.0
    )  # 4 orders of 10 each

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


@pytest.mark.slow
def test_a_backfill_equals_the_nightly_runs(landing: Path, in_order: Path, tmp_path: Path) -> None:
    nightly, backfilled = in_order, tmp_path / "backfill"
    results = run_dates(
        lambda d: _ctx(landing, backfilled, d.isoformat(), tmp_path),
        date(2024, 3, 1),
        date(2024, 3, 3),
    )
    assert [e for _, _, e in results] == [None, None, None]
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        a, b = _tables(nightly, day), _tables(backfilled, day)
        assert set(a) == set(b) and len(a) >= 7
        for name in a:
            assert a[name].equals(b[name]), (day, name)
    # and rerunning the backfill changes nothing
    run_dates(
        lambda d: _ctx(landing, backfilled, d.isoformat(), tmp_path),
        date(2024, 3, 1),
        date(2024, 3, 3),
    )
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        for name, frame in _tables(backfilled, day).items():
            assert frame.equals(_tables(nightly, day)[name]), (day, name)


def test_a_day_without_arrivals_is_a_clear_error(landing: Path, tmp_path: Path) -> None:
    """With nothing to build from, or when configured strict; otherwise a gap (tested below)."""
    with pytest.raises(
        SourceError,
        match=r"no arrivals for 2024-02-28 \(expected a folder date=2024-02-28\) and no accepted history",
    ):
        run_all(_ctx(landing, tmp_path / "wh", "2024-02-28", tmp_path))
    strict = tmp_path / "strict.yaml"
    strict.write_text(NO_PREDICTIONS + "sources:\n  missing_arrivals: fail\n")
    ctx = RunContext.create(
        source=str(landing),
        snapshot_date="2024-03-09",
        warehouse=tmp_path / "wh2",
        config_path=str(strict),
    )
    with pytest.raises(
        SourceError,
        match=r"no arrivals for 2024-03-09 \(expected a folder date=2024-03-09\); sources.missing_arrivals is fail",
    ):
        run_all(ctx)


def test_source_kinds_are_told_apart(landing: Path, tmp_path: Path) -> None:
    from pipelines.sources import resolve

    assert resolve(str(landing)).kind == "landing"
    assert resolve(str(landing / "date=2024-03-01" / "orders.csv")).kind == "files"
    pg = resolve("postgresql://reader:secret@db:5432/shop", table="public.orders")
    assert (
        pg.kind == "postgres" and pg.display == "postgresql://reader:***@db:5432/shop#public.orders"
    )
    with pytest.raises(SourceError, match="needs --table"):
        resolve("postgresql://db/shop")
    with pytest.raises(SourceError, match="only for PostgreSQL"):
        resolve(str(landing), table="orders")


# ------------------------------------------------------------------------------------------
# Ordering, late batches, quiet days, rejected batches


def _customers(wh: Path, day: str) -> int:
    return pl.read_parquet(wh / "marts" / "customer_rfm" / f"snapshot_date={day}").height


def _orders_in(wh: Path, day: str) -> int:
    return int(
        pl.read_parquet(wh / "marts" / "customer_rfm" / f"snapshot_date={day}")["order_count"].sum()
    )


@pytest.mark.slow
def test_a_snapshot_waits_for_the_day_before(landing: Path, tmp_path: Path) -> None:
    from pipelines.run.pipeline import OutOfOrderError

    wh = tmp_path / "wh"
    run_all(_ctx(landing, wh, "2024-03-01", tmp_path))
    with pytest.raises(
        OutOfOrderError,
        match=r"snapshot 2024-03-03 needs snapshot 2024-03-02 first.*custval backfill --start 2024-03-02 --end 2024-03-03",
    ):
        run_all(_ctx(landing, wh, "2024-03-03", tmp_path))
    assert not (wh / "runs" / "snapshot_date=2024-03-03").exists()


@pytest.mark.slow
def test_runs_of_different_days_at_once_give_the_in_order_result(
    landing: Path, in_order: Path, tmp_path: Path
) -> None:
    """Three days started together (as an Airflow backfill does): each waits for the one before."""
    import threading

    ordered, parallel = in_order, tmp_path / "parallel"
    errors: list[BaseException] = []

    def go(day: str) -> None:
        try:
            run_all(_ctx(landing, parallel, day, tmp_path), wait_seconds=300)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    run_all(
        _ctx(landing, parallel, "2024-03-01", tmp_path)
    )  # the first snapshot starts the history
    threads = [threading.Thread(target=go, args=(d,)) for d in ("2024-03-03", "2024-03-02")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        a, b = _tables(ordered, day), _tables(parallel, day)
        assert set(a) == set(b) and len(a) >= 7
        for name in a:
            assert a[name].equals(b[name]), (day, name)


@pytest.mark.slow
def test_a_missing_day_is_a_gap_filled_when_its_batch_lands(
    landing: Path, in_order: Path, tmp_path: Path
) -> None:
    """D-1's folder is missing when D-1 and D are built; it arrives later: both are rebuilt."""
    wh = tmp_path / "wh"
    late = landing.parent / "held_back"
    (landing / "date=2024-03-02").rename(late)
    run_all(_ctx(landing, wh, "2024-03-01", tmp_path))
    gap = run_all(_ctx(landing, wh, "2024-03-02", tmp_path))
    assert gap["gaps"] == ["2024-03-02"] and gap["counts"]["rows_in"] == 0
    assert any("no batch has arrived for 2024-03-02" in w for w in gap["warnings"])
    third = run_all(_ctx(landing, wh, "2024-03-03", tmp_path))
    assert third["gaps"] == ["2024-03-02"]
    assert _orders_in(wh, "2024-03-03") == 80  # Mar 1 and Mar 3 only
    late.rename(landing / "date=2024-03-02")  # the batch lands, two days late
    again = run_all(_ctx(landing, wh, "2024-03-03", tmp_path))
    assert again["late_batches"] == ["2024-03-02"]
    assert again["rebuilt_snapshots"] == ["2024-03-01", "2024-03-02"]
    assert again["gaps"] == []
    # every snapshot now equals a run in order with every batch on time
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        a, b = _tables(in_order, day), _tables(wh, day)
        assert set(a) == set(b) and len(a) >= 7
        for name in a:
            assert a[name].equals(b[name]), (day, name)
    assert _orders_in(wh, "2024-03-03") == 40 + 42 - 1 + 40  # A1's correction replaces A1


@pytest.mark.slow
def test_a_quiet_day_publishes_from_the_history(landing: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    quiet = landing / "date=2024-03-04"
    quiet.mkdir()
    write_csv(landing / "date=2024-03-05" / "orders.csv", [], COLUMNS)  # a header and no rows
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        run_all(_ctx(landing, wh, day, tmp_path))
    for day in ("2024-03-04", "2024-03-05"):
        manifest = run_all(_ctx(landing, wh, day, tmp_path))
        assert manifest["quiet_day"] is True and manifest["counts"]["rows_in"] == 0
        assert any("quiet day" in w for w in manifest["warnings"])
        assert _customers(wh, day) == _customers(wh, "2024-03-03")


def test_a_full_file_drop_with_no_rows_is_still_rejected(tmp_path: Path) -> None:
    from pipelines.errors import BatchRejected, CustvalError

    empty = write_csv(tmp_path / "drop" / "orders.csv", [], COLUMNS)
    ctx = RunContext.create(
        source=str(empty), snapshot_date="2024-03-01", warehouse=tmp_path / "wh"
    )
    with pytest.raises(BatchRejected, match="batch_not_empty failed: the batch has no rows"):
        run_all(ctx)
    cfg = tmp_path / "allow.yaml"
    cfg.write_text(NO_PREDICTIONS + "validation:\n  allow_empty_batch: true\n")
    ctx = RunContext.create(
        source=str(empty),
        snapshot_date="2024-03-01",
        warehouse=tmp_path / "wh",
        config_path=str(cfg),
    )
    with pytest.raises(
        CustvalError,
        match=r"snapshot 2024-03-01 has no accepted orders .* nothing to build it from",
    ):
        run_all(ctx)  # past the gate, but a snapshot needs orders


@pytest.mark.slow
def test_a_rejected_batch_never_counts_as_ingested(landing: Path, tmp_path: Path) -> None:
    from pipelines.errors import BatchRejected
    from pipelines.run.pipeline import OutOfOrderError

    wh = tmp_path / "wh"
    run_all(_ctx(landing, wh, "2024-03-01", tmp_path))
    good = (landing / "date=2024-03-02" / "orders.csv").read_text()
    bad_rows = [
        (f"X{i}", "C1", "2024-03-02T10:00:00Z", "12,50", "USD", "completed", "2024-03-02T10:00:00Z")
        for i in range(10)
    ]
    write_csv(
        landing / "date=2024-03-02" / "bad.csv", bad_rows, COLUMNS
    )  # 10 of 52 rows unparseable
    with pytest.raises(BatchRejected, match=r"quarantined_share failed: 10 of 52 lines"):
        run_all(_ctx(landing, wh, "2024-03-02", tmp_path))
    kept = list((wh / "rejected" / "orders").iterdir())
    assert (
        len(kept) == 1 and (kept[0] / "quarantine.parquet").is_file() and (kept[0] / "raw").is_dir()
    )
    assert not (wh / "accepted" / "orders" / "ingest_date=2024-03-02").exists()
    assert not (
        wh / "raw" / "orders" / "ingest_date=2024-03-02"
    ).exists()  # moved aside for inspection
    # the next night refuses rather than building on a history without Mar 2
    with pytest.raises(
        OutOfOrderError,
        match=r"needs snapshot 2024-03-02 first.*its last run failed: rule quarantined_share",
    ):
        run_all(_ctx(landing, wh, "2024-03-03", tmp_path))
    (
        landing / "date=2024-03-02" / "bad.csv"
    ).unlink()  # the source is fixed; the retry reads it again
    retried = run_all(_ctx(landing, wh, "2024-03-02", tmp_path))
    assert retried["counts"]["rows_in"] == 42 and retried["counts"]["rows_accepted"] == 42
    assert (landing / "date=2024-03-02" / "orders.csv").read_text() == good
    run_all(_ctx(landing, wh, "2024-03-03", tmp_path))
    assert _orders_in(wh, "2024-03-03") == 40 + 42 - 1 + 40


@pytest.mark.slow
def test_every_file_of_an_arrival_folder_is_read_or_listed(landing: Path, tmp_path: Path) -> None:
    import gzip

    folder = landing / "date=2024-03-01"
    rows = [_order(f"G{i}", f"C{i % 10}", "2024-03-01", "1.00") for i in range(5)]
    gz_src = write_csv(tmp_path / "tmp.csv", rows, COLUMNS)
    (folder / "more.csv.gz").write_bytes(gzip.compress(gz_src.read_bytes()))
    (folder / "_SUCCESS").write_text("")
    (folder / "notes.txt").write_text("not orders\n")
    with pytest.raises(
        SourceError,
        match=r"1 file\(s\) cannot be read: .*notes.txt.*sources.unsupported_files: skip",
    ):
        run_all(_ctx(landing, tmp_path / "wh", "2024-03-01", tmp_path))
    cfg = tmp_path / "skip.yaml"
    cfg.write_text(NO_PREDICTIONS + "sources:\n  unsupported_files: skip\n")
    ctx = RunContext.create(
        source=str(landing),
        snapshot_date="2024-03-01",
        warehouse=tmp_path / "wh",
        config_path=str(cfg),
    )
    manifest = run_all(ctx)
    assert manifest["counts"]["rows_in"] == 45  # the gzip file is read too
    refused = {Path(r["path"]).name: r["code"] for r in manifest["refused_files"]}
    assert refused == {"_SUCCESS": "HIDDEN", "notes.txt": "UNSUPPORTED_TYPE"}
    assert any("notes.txt" in w for w in manifest["warnings"])


@pytest.mark.slow
def test_two_custval_backfills_at_once_give_the_in_order_result(
    landing: Path, in_order: Path, tmp_path: Path
) -> None:
    """Two `custval backfill` processes over the same days and warehouse, started together."""
    import subprocess
    import sys

    ordered, parallel = in_order, tmp_path / "parallel"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(NO_PREDICTIONS)
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "backfill",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-03",
        "--source",
        str(landing),
        "--warehouse",
        str(parallel),
        "--config",
        str(cfg),
        "--wait",
        "300",
    ]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        a, b = _tables(ordered, day), _tables(parallel, day)
        assert set(a) == set(b) and len(a) >= 7
        for name in a:
            assert a[name].equals(b[name]), (day, name)
