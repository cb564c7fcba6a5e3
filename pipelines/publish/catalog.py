"""The catalog BI tools connect to: `DIR/custval.duckdb`, one view per published table.

Metabase, Superset, Power BI (through DuckDB's ODBC driver) or a DuckDB CLI user opens one file
instead of globbing Parquet: `<table>` is every published snapshot of the table
(`snapshot_date` a DATE), `<table>_latest` the newest published snapshot's rows, and
`custval_snapshots` lists the published snapshots with their run and status. The views read
the Parquet files in place (nothing is copied), so `<table>` sees a snapshot published after the
catalog was built; `<table>_latest` names its date and moves on when the catalog is rebuilt,
which every publish does (and `custval catalog --warehouse DIR` does by hand, e.g. after moving
the warehouse: the views hold its absolute path).

The file is rebuilt whole under another name and renamed over the old one, under a lock, so a
BI tool never opens a half-written catalog and two publishing runs cannot leave an older list
of snapshots in place of a newer one (the rebuild that renames last read the warehouse last).
A connection already open keeps reading the catalog it opened. The quarantine is not in it: it
holds source values (PII) and stays a restricted zone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from pipelines.errors import CustvalError
from pipelines.storage import layout, local_view
from pipelines.storage.atomic import fsync_path
from pipelines.storage.faults import checkpoint
from pipelines.storage.jsonfile import read_json
from pipelines.storage.snapshots import published_snapshots

log = logging.getLogger(__name__)

LATEST_SUFFIX = "_latest"
SNAPSHOTS_TABLE = "custval_snapshots"


def published_tables(warehouse: Path) -> list[str]:
    """Tables with at least one published partition, by name."""
    marts = warehouse / layout.MARTS
    if not marts.is_dir():
        return []
    return sorted(
        entry.name
        for entry in marts.iterdir()
        if entry.is_dir()
        and any(
            (p / layout.TABLE_FILE).is_file()
            for p in layout.dated_partitions(entry, "snapshot_date").values()
        )
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _snapshot_rows(warehouse: Path, snapshots: list[date]) -> list[tuple[Any, ...]]:
    rows = []
    for day in snapshots:
        manifest = read_json(layout.manifest_path(warehouse, day)) or {}
        rows.append((day, manifest.get("status"), manifest.get("run_id"), manifest.get("version")))
    return rows


def _write(path: Path, warehouse: Path, tables: list[str], snapshots: list[date]) -> None:
    latest = snapshots[-1] if snapshots else None
    con = duckdb.connect(str(path))
    try:
        for table in tables:
            files = (warehouse / layout.MARTS / table).as_posix() + "/*/*.parquet"
            con.execute(
                f"create view {_quote(table)} as select * from read_parquet({_literal(files)}, "
                "hive_partitioning = true, hive_types = {'snapshot_date': date})"
            )
            if latest is not None:
                con.execute(
                    f"create view {_quote(table + LATEST_SUFFIX)} as select * from {_quote(table)} "
                    f"where snapshot_date = date {_literal(latest.isoformat())}"
                )
        con.execute(
            f"create table {SNAPSHOTS_TABLE} (snapshot_date date, status varchar, run_id varchar, "
            "version varchar)"
        )
        rows = _snapshot_rows(warehouse, snapshots)
        if rows:
            con.executemany(f"insert into {SNAPSHOTS_TABLE} values (?, ?, ?, ?)", rows)
        con.execute("checkpoint")
    finally:
        con.close()


def build_catalog(warehouse: Path) -> Path:
    """Rebuild `DIR/custval.duckdb` from what is published now; returns its path."""
    if (store := local_view.remote_of(warehouse)) is not None:
        raise CustvalError(
            f"{store.url}: an object-store warehouse has no DuckDB catalog (its views would need "
            "DuckDB's httpfs extension); read the tables with DuckDB over a pyarrow dataset or "
            "an fsspec filesystem, as the README shows"
        )
    warehouse = warehouse.resolve()
    target = warehouse / layout.CATALOG
    lock_path = warehouse / layout.LOCKS / "catalog.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        for stale in warehouse.glob(f".{layout.CATALOG.name}.*.tmp*"):
            stale.unlink(missing_ok=True)  # a rebuild killed midway: we hold the lock now
        snapshots = published_snapshots(warehouse)
        tables = published_tables(warehouse)
        staged = warehouse / f".{layout.CATALOG.name}.{secrets.token_hex(4)}.tmp"
        try:
            _write(staged, warehouse, tables, snapshots)
            fsync_path(staged)
            checkpoint("catalog.replace")
            os.replace(staged, target)
            fsync_path(warehouse)
        finally:
            staged.unlink(missing_ok=True)
            Path(f"{staged}.wal").unlink(missing_ok=True)
    log.info("catalog %s: %d tables, %d snapshots", target, len(tables), len(snapshots))
    return target


def refresh_catalog(warehouse: Path) -> dict[str, Any]:
    """After a publish: rebuild the catalog; a failure is a warning, never a failed publish.

    An object-store warehouse has no catalog file: its views would read `s3://` paths through
    DuckDB's httpfs extension, which is downloaded at INSTALL time (see the README for how
    DuckDB reads such a warehouse instead).
    """
    if local_view.remote_of(warehouse) is not None:
        return {"catalog_path": None}
    try:
        return {"catalog_path": str(build_catalog(warehouse))}
    except (OSError, duckdb.Error) as exc:
        log.warning(
            "the catalog %s was not rebuilt (%s); the snapshot is published; rebuild it with "
            "`custval catalog --warehouse %s`",
            warehouse / layout.CATALOG,
            exc,
            warehouse,
        )
        return {"catalog_path": None}
