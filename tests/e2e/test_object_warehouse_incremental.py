"""An incremental source on an S3 warehouse (moto on 127.0.0.1) gives what a local one gives.

A landing directory backfilled into both: the accepted history, the raw zone, ordering and
the rebuild a late order causes all go through the store; every table of every snapshot equals
the local warehouse's. Then what people do with it: the report rendered again, the BI refresh's
`latest/`, a lease left by another host refused and removed with `custval unlock`, an unreadable
lease named in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import write_csv
from warehouse_helper import NO_PREDICTIONS, Published, custval, s3_client, views_left

COLUMNS = ["order_id", "customer_id", "order_ts", "amount", "currency", "status", "updated_at"]


def _order(oid: str, customer: str, day: str, amount: str, updated: str | None = None) -> tuple:
    stamp = f"{day}T10:00:00Z"
    return (oid, customer, stamp, amount, "USD", "completed", updated or stamp)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing" / "orders"
    day1 = [_order(f"A{i}", f"C{i % 10}", "2024-03-01", "10.00") for i in range(40)]
    day2 = [_order(f"B{i}", f"C{i % 10}", "2024-03-02", "20.00") for i in range(40)]
    day2 += [  # a late order for Mar 1 and a correction of A1: snapshot Mar 1 is rebuilt
        _order("LATE1", "C3", "2024-03-01", "5.00"),
        _order("A1", "C1", "2024-03-01", "99.00", "2024-03-02T08:00:00Z"),
    ]
    day3 = [_order(f"D{i}", f"C{i % 10}", "2024-03-03", "30.00") for i in range(40)]
    for day, rows in (("2024-03-01", day1), ("2024-03-02", day2), ("2024-03-03", day3)):
        write_csv(root / f"date={day}" / "orders.csv", rows, COLUMNS)
    return root


def test_backfill_report_and_unlock_on_s3_equal_a_local_warehouse(
    landing: Path, tmp_path: Path, s3_warehouse: str
) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(NO_PREDICTIONS)
    s3, local = Published(s3_warehouse), Published(str(tmp_path / "local-wh"))
    days = ["2024-03-01", "2024-03-02", "2024-03-03"]
    for wh in (s3, local):
        res = custval(
            "backfill",
            "--start",
            days[0],
            "--end",
            days[-1],
            "--source",
            str(landing),
            "--warehouse",
            wh.location,
            "--config",
            str(config),
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert "rebuilt 2024-03-01" in res.stdout
    for day in days:
        got, want = s3.tables(day), local.tables(day)
        assert got.keys() == want.keys()
        for name in want:
            assert got[name].equals(want[name]), (day, name)
        s3_manifest, local_manifest = s3.manifest(day), local.manifest(day)
        assert s3_manifest is not None and local_manifest is not None
        for key in ("counts", "history_batches", "gaps", "quarantine_reasons", "status"):
            assert s3_manifest[key] == local_manifest[key], (day, key)
    rfm = s3.table("customer_rfm", "2024-03-01").sort("customer_id")
    c1 = rfm.filter(pl.col("customer_id") == "C1")["monetary_total"].cast(pl.Float64).item()
    assert c1 == pytest.approx(3 * 10.0 + 99.0)  # the correction rebuilt Mar 1
    # the accepted zone and its records are in the store, the raw zone too
    assert [f for f in s3.files("accepted/orders") if f.endswith("_batch.json")] == [
        f"ingest_date={d}/_batch.json" for d in days
    ]
    assert s3.files("raw/orders") == local.files("raw/orders")

    # the BI refresh DAG's `latest/`, from the asset event naming the s3:// warehouse
    from pipelines.publish.latest import refresh_latest

    out = refresh_latest([{"warehouse": s3.location, "snapshot_date": days[-1]}])
    assert out == {"warehouse": s3.location, "snapshot_date": days[-1], "tables": 11}
    kpis = s3.json("latest/kpis.json")
    assert kpis["snapshot_date"] == days[-1]
    assert kpis["net_revenue"] == pytest.approx(
        float(s3.table("kpi_summary", days[-1])["net_revenue"].cast(pl.Float64).item())
    )
    assert s3.json("latest/tables.json")["customer_rfm"] == (
        f"{s3.location}/marts/customer_rfm/snapshot_date={days[-1]}"
    )

    # a snapshot's report, rendered again from the store's pinned version
    out = tmp_path / "report.html"
    res = custval("report", "--as-of", days[-1], "--warehouse", s3.location, "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"Customer value report · {days[-1]}" in out.read_text()
    missing = custval("report", "--as-of", "2020-01-01", "--warehouse", s3.location)
    assert missing.returncode == 1
    assert f"snapshot 2020-01-01 is not published in {s3.location}" in missing.stderr

    # a lease left by a run on another host: refused, named, removed by unlock --force
    lease = {
        "run_id": "elsewhere",
        "holder": "run",
        "host": "another-host",
        "pid": 4242,
        "acquired_at": "2024-03-04T00:00:00+00:00",
        "renewed_at": "2099-01-01T00:00:00+00:00",
        "expires_at": "2099-01-01T00:00:00+00:00",
    }
    bucket, prefix = s3.location.removeprefix("s3://").split("/", 1)
    key = f"{prefix}/_locks/snapshot_date=2024-03-04.lease"
    s3_client().put_object(Bucket=bucket, Key=key, Body=json.dumps(lease).encode())
    (landing / "date=2024-03-04").mkdir()
    write_csv(
        landing / "date=2024-03-04" / "orders.csv",
        [_order("E1", "C1", "2024-03-04", "1.00")],
        COLUMNS,
    )
    args = ["run", "--source", str(landing), "--as-of", "2024-03-04", "--warehouse", s3.location]
    refused = custval(*args, "--config", str(config))
    assert refused.returncode == 1
    assert "snapshot 2024-03-04 is being built by run elsewhere" in refused.stderr
    assert f"custval unlock --as-of 2024-03-04 --warehouse {s3.location}" in refused.stderr
    kept = custval("unlock", "--as-of", "2024-03-04", "--warehouse", s3.location)
    assert kept.returncode == 1 and "cannot be checked from this host" in kept.stderr
    gone = custval("unlock", "--as-of", "2024-03-04", "--warehouse", s3.location, "--force")
    assert gone.returncode == 0, gone.stderr
    assert "removed the lease of run elsewhere" in gone.stdout
    ok = custval(*args, "--config", str(config))
    assert ok.returncode == 0, ok.stderr[-3000:]
    # an unreadable lease: one line naming the object and the remedy
    s3_client().put_object(Bucket=bucket, Key=key, Body=b"{not json")
    bad = custval(*args, "--config", str(config))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    errors = [line for line in bad.stderr.strip().splitlines() if not line.startswith("warning:")]
    assert len(errors) == 1 and errors[0].startswith("error: "), bad.stderr
    assert f"s3://{bucket}/{key} is unreadable" in bad.stderr
    assert f"custval unlock --as-of 2024-03-04 --warehouse {s3.location} --force" in bad.stderr
    assert views_left() == []
