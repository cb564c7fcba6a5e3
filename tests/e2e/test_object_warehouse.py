"""The command line against a local warehouse and an S3 one (moto on 127.0.0.1): same assertions.

Each test runs `custval` as a user does -- subprocesses, exit codes, published files -- once
with `--warehouse DIR` and once with `--warehouse s3://bucket/prefix`, and reads what was
published the way readers do (pyarrow over the stable paths, a pinned read through the
manifest's version, Polars, DuckDB over an Arrow dataset), never through custval's storage code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import REPO
from warehouse_helper import NO_PREDICTIONS, Published, custval, views_left

KINDS = ["local", "s3"]


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A small generated order history (3,000 orders), its frame, last day and a config."""
    from pipelines.tools.generate import simulate_orders, write_orders

    base = tmp_path_factory.mktemp("orders")
    frame = simulate_orders(3_000, seed=17, start=date(2024, 1, 1), days=200)
    path = write_orders(frame, base / "orders.csv", "csv")
    config = base / "cfg.yaml"
    config.write_text(NO_PREDICTIONS)
    return {"path": path, "frame": frame, "last": frame["order_ts"].max().date(), "config": config}  # type: ignore[union-attr]


@pytest.fixture(params=KINDS)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Published:
    if request.param == "s3":
        return Published(request.getfixturevalue("s3_warehouse"))
    request.getfixturevalue("s3_env")  # the same environment (scratch dir) for both kinds
    return Published(str(tmp_path / "wh"))


def run(source: dict[str, object], day: date, wh: Published) -> subprocess.CompletedProcess[str]:
    return custval(
        "run",
        "--source",
        str(source["path"]),
        "--as-of",
        day.isoformat(),
        "--warehouse",
        wh.location,
        "--config",
        str(source["config"]),
    )


def independent_rfm(orders: pl.DataFrame, snapshot: date) -> pl.DataFrame:
    """Orders and net revenue per customer, straight from the generated frame."""
    end = pl.lit(snapshot + timedelta(days=1)).cast(pl.Datetime("us", "UTC"))
    purchase = pl.col("status") == "completed"
    return (
        orders.filter(pl.col("order_ts") < end, pl.col("status") != "cancelled")
        .group_by("customer_id")
        .agg(
            purchase.sum().alias("order_count"),
            pl.when(purchase).then(pl.col("amount")).otherwise(0).sum().alias("monetary_total"),
        )
        .filter(pl.col("order_count") > 0)
        .sort("customer_id")
    )


def s3_readers(warehouse: Published, day: date) -> list[int]:
    """Rows of customer_rfm's snapshot `day` as DuckDB (pyarrow's S3 filesystem through fsspec,
    no httpfs) and Polars (its own S3 client, endpoint given) read them, as the README shows."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    class S3(ArrowFSWrapper):
        protocol = "s3"

    con = duckdb.connect()
    con.register_filesystem(S3(warehouse.fs))
    glob = f"{warehouse.location}/marts/customer_rfm/*/*.parquet"
    in_duckdb = con.sql(
        f"select count(*) from read_parquet('{glob}', hive_partitioning = true) "
        "where snapshot_date = ?",
        params=[day],
    ).fetchall()[0][0]
    in_polars = (
        pl.scan_parquet(
            f"{warehouse.location}/marts/customer_rfm/",
            hive_partitioning=True,
            storage_options={
                "aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"],
                "aws_allow_http": "true",
            },
        )
        .filter(pl.col("snapshot_date") == day)
        .select(pl.len())
        .collect()
        .item()
    )
    return [int(in_duckdb), int(in_polars)]


def test_run_then_rerun(source: dict[str, object], warehouse: Published) -> None:
    """Rows, reconciliation and every reader; a rerun gives the same tables, bit for bit."""
    day: date = source["last"]  # type: ignore[assignment]
    first = run(source, day, warehouse)
    assert first.returncode == 0, first.stderr[-3000:]
    assert warehouse.location in first.stdout  # the run names the warehouse as given
    manifest = warehouse.manifest(day)
    assert manifest is not None
    counts = manifest["counts"]
    assert counts["rows_in"] == 3_000
    assert counts["rows_in"] == (
        counts["rows_accepted"] + counts["rows_quarantined"] + counts["rows_duplicate"]
    )
    assert manifest["reconciles"] is True
    where = warehouse.location
    assert manifest["tables"]["customer_rfm"]["path"] == (
        f"{where}/marts/customer_rfm/snapshot_date={day}"
    )
    assert manifest["report_path"] == f"{where}/reports/snapshot_date={day}/index.html"
    assert "Customer value report" in warehouse.read_bytes(
        f"reports/snapshot_date={day}/index.html"
    ).decode("utf-8")

    # the rows, against an independent computation; the same through every reader
    rfm = warehouse.table("customer_rfm", day).sort("customer_id")
    expected = independent_rfm(source["frame"], day)  # type: ignore[arg-type]
    assert rfm["customer_id"].to_list() == expected["customer_id"].to_list()
    assert rfm["order_count"].to_list() == expected["order_count"].to_list()
    assert rfm["monetary_total"].cast(pl.Float64).to_numpy() == pytest.approx(
        expected["monetary_total"].to_numpy(), abs=0.005
    )
    assert rfm.height == manifest["tables"]["customer_rfm"]["rows"]
    assert warehouse.pinned_table("customer_rfm", day).sort("customer_id").equals(rfm)
    dataset = warehouse.dataset("customer_rfm")
    assert dataset.count_rows() == rfm.height
    got = duckdb.sql(
        "select count(*), sum(order_count) from dataset where snapshot_date = ?",
        params=[day.isoformat()],
    ).fetchall()
    assert got == [(rfm.height, rfm["order_count"].sum())]
    if warehouse.kind == "s3":  # the README's other S3 readers: DuckDB over fsspec, Polars
        assert s3_readers(warehouse, day) == [rfm.height] * 2
    assert warehouse.exists(f"quarantine/orders/snapshot_date={day}/part-0.parquet")
    assert views_left() == []  # the run's local view (landed rows, PII) is gone

    before = warehouse.tables(day)
    again = run(source, day, warehouse)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = warehouse.manifest(day)
    assert rerun is not None and rerun["run_id"] != manifest["run_id"]
    after = warehouse.tables(day)
    assert after.keys() == before.keys()
    for name, frame in before.items():
        assert after[name].equals(frame), name
    # the replaced version is kept for pinned readers; nothing else is left behind
    versions = {p.split("/", 1)[0] for p in warehouse.files(f"_snapshots/snapshot_date={day}")}
    assert {manifest["version"], rerun["version"]} <= versions
    switches = {"current", "previous"} if warehouse.kind == "local" else {"current.json"}
    assert versions - {manifest["version"], rerun["version"]} <= switches
    assert views_left() == []


def test_two_runs_of_one_date_at_once(source: dict[str, object], warehouse: Published) -> None:
    day: date = source["last"]  # type: ignore[assignment]
    args = ["run", "--source", str(source["path"]), "--as-of", day.isoformat()]
    args += ["--warehouse", warehouse.location, "--config", str(source["config"])]
    procs = [start(*args) for _ in range(2)]
    outcomes = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    done = [o for o in outcomes if o[0] == 0]
    refused = [o for o in outcomes if o[0] != 0]
    assert len(done) == 1 and len(refused) == 1, outcomes
    assert f"snapshot {day} is being built by run" in refused[0][2], refused[0][2]
    assert "Traceback" not in refused[0][2]
    manifest = warehouse.manifest(day)
    assert manifest is not None  # the winner's, as the refused run said
    assert f"being built by run {manifest['run_id']}" in " ".join(refused[0][2].split())
    assert warehouse.table("customer_rfm", day).height == manifest["tables"]["customer_rfm"]["rows"]
    assert not [f for f in warehouse.files("_locks") if f.endswith(".lease")]
    assert views_left() == []  # the refused run's view too
