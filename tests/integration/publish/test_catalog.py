"""The DuckDB catalog `DIR/custval.duckdb`: a view per table over every snapshot, and `_latest`.

Two snapshots are published; the catalog, opened read-only as a BI tool would, must show each
table's rows of both snapshots (the same as globbing the Parquet files), `snapshot_date` as a
DATE, `<table>_latest` the newest snapshot only -- also for a table that is empty in it -- and
`custval_snapshots` both runs. A connection opened before the second publish keeps working
(the file is replaced, not rewritten), and a rebuild killed before its rename leaves the old
catalog whole and its leftover cleaned by the next rebuild.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from pipelines.publish.catalog import build_catalog

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(
    generated_orders: tuple[Path, pl.DataFrame, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    from pipelines.context import RunContext
    from pipelines.run.pipeline import run_all

    source, _, last_day = generated_orders
    base = tmp_path_factory.mktemp("catalog")
    wh = base / "wh"
    off = base / "off.yaml"
    off.write_text("predictive:\n  enabled: false\n")

    def run(day: Any, config: Path | None = None) -> dict[str, Any]:
        ctx = RunContext.create(
            source=str(source),
            snapshot_date=day,
            warehouse=wh,
            config_path=str(config) if config else None,
        )
        manifest = run_all(ctx)
        assert manifest["status"] in ("success", "degraded"), manifest.get("error")
        return manifest

    first = run("2024-09-30")
    early = duckdb.connect(str(wh / "custval.duckdb"), read_only=True)
    before = early.sql("select count(*) from customer_rfm_latest").fetchall()[0][0]
    second = run(last_day, off)  # newer, and without models: model_fit is empty in it
    # the connection opened before keeps the catalog it opened (read now, then closed: DuckDB
    # caches an open database by path in a process, and later connections would share it)
    after = {
        "latest": early.sql("select count(*) from customer_rfm_latest").fetchall()[0][0],
        "snapshots": early.sql("select count(distinct snapshot_date) from customer_rfm").fetchall(),
    }
    early.close()
    return {"wh": wh, "first": first, "second": second, "before": before, "after": after}


def _catalog(wh: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(wh / "custval.duckdb"), read_only=True)


def test_a_view_per_table_over_every_snapshot(published: dict[str, Any]) -> None:
    wh, second = published["wh"], published["second"]
    assert second["catalog_path"] == str((wh / "custval.duckdb").resolve())
    con = _catalog(wh)
    names = {row[0] for row in con.sql("show tables").fetchall()}
    tables = set(second["tables"])
    assert names == tables | {f"{t}_latest" for t in tables} | {"custval_snapshots"}
    assert "quarantine_orders" not in names and "orders" not in names  # PII stays restricted
    for table in sorted(tables):
        via_catalog = con.sql(
            f"select snapshot_date, count(*) from {table} group by 1 order by 1"
        ).fetchall()
        via_files = duckdb.sql(
            f"select snapshot_date, count(*) from read_parquet('{wh}/marts/{table}/*/*.parquet', "
            "hive_partitioning = true) group by 1 order by 1"
        ).fetchall()
        assert [(str(d), n) for d, n in via_catalog] == [(str(d), n) for d, n in via_files], table
        types = dict(con.sql(f"select column_name, column_type from (describe {table})").fetchall())
        assert types["snapshot_date"] == "DATE", table
    for name in ("first", "second"):
        manifest = published[name]
        got = con.sql(
            "select count(*) from customer_rfm where snapshot_date = ?",
            params=[manifest["snapshot_date"]],
        ).fetchall()[0][0]
        assert got == manifest["tables"]["customer_rfm"]["rows"]


def test_latest_views_show_the_newest_snapshot_only(published: dict[str, Any]) -> None:
    con, second = _catalog(published["wh"]), published["second"]
    for table, entry in second["tables"].items():
        rows = con.sql(
            f"select count(*), count(distinct snapshot_date), min(snapshot_date)::varchar "
            f"from {table}_latest"
        ).fetchall()[0]
        assert rows[0] == entry["rows"], table
        assert rows[0] == 0 or rows[1:] == (1, second["snapshot_date"]), table
    # model_fit has rows in the first snapshot and none in the newest: _latest is empty
    assert con.sql("select count(*) from model_fit").fetchall()[0][0] > 0
    assert con.sql("select count(*) from model_fit_latest").fetchall()[0][0] == 0
    snapshots = con.sql(
        "select snapshot_date::varchar, status, run_id from custval_snapshots order by 1"
    ).fetchall()
    assert snapshots == [
        (published["first"]["snapshot_date"], "success", published["first"]["run_id"]),
        (second["snapshot_date"], second["status"], second["run_id"]),
    ]


def test_a_connection_opened_before_a_publish_keeps_working(published: dict[str, Any]) -> None:
    after = published["after"]
    # the old catalog's latest is still the first snapshot; its views read the files in place
    assert after["latest"] == published["before"]
    assert published["before"] == published["first"]["tables"]["customer_rfm"]["rows"]
    assert after["snapshots"][0][0] == 2  # a snapshot published after it was built is seen


def test_a_rebuild_killed_before_its_rename_leaves_the_catalog_whole(
    published: dict[str, Any],
) -> None:
    wh = published["wh"]
    before = _catalog(wh).sql("select count(*) from custval_snapshots").fetchall()
    code = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from pipelines.publish.catalog import "
            "build_catalog; build_catalog(Path(sys.argv[1]))",
            str(wh),
        ],
        env={**os.environ, "CUSTVAL_KILL_AT": "1"},  # the rebuild's one checkpoint
        check=False,
    ).returncode
    assert code == -9
    leftovers = sorted(wh.glob(".custval.duckdb.*.tmp*"))
    assert leftovers, "the killed rebuild should have left its staged file"
    assert _catalog(wh).sql("select count(*) from custval_snapshots").fetchall() == before
    build_catalog(wh)
    assert not list(wh.glob(".custval.duckdb.*.tmp*"))
    assert _catalog(wh).sql("select count(*) from custval_snapshots").fetchall() == before


def test_custval_catalog_rebuilds_it(published: dict[str, Any], tmp_path: Path) -> None:
    from conftest import REPO

    wh = published["wh"]
    (wh / "custval.duckdb").unlink()
    res = subprocess.run(
        [sys.executable, "-m", "pipelines", "catalog"],
        env={**os.environ, "CUSTVAL_WAREHOUSE": str(wh)},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "catalog:" in res.stdout
    assert _catalog(wh).sql("select count(*) from kpi_summary").fetchall()[0][0] == 2


def test_an_empty_warehouse_gets_a_catalog_without_views(tmp_path: Path) -> None:
    (tmp_path / "wh").mkdir()
    path = build_catalog(tmp_path / "wh")
    con = duckdb.connect(str(path), read_only=True)
    assert con.sql("show tables").fetchall() == [("custval_snapshots",)]
