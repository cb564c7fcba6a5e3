"""The warehouse layout: every zone, every partition path, in one place.

    DIR/
      raw/orders/snapshot_date=D/ | ingest_date=D/     landed batches as received (restricted)
      accepted/orders/ingest_date=D/                   accepted batches of incremental sources (restricted)
      rejected/orders/<run_id>/                        batches a gate rejected, for inspection (restricted)
      _snapshots/snapshot_date=D/<run>@<token>/        snapshot versions; `current`, `previous` links
      marts/<table>/snapshot_date=D/part-0.parquet     published tables (links into the current version)
      quarantine/orders/snapshot_date=D/               the snapshot's quarantine (restricted)
      runs/snapshot_date=D/manifest.json               the snapshot's manifest; history/, _last_failure.json
      reports/snapshot_date=D/index.html               the snapshot's HTML report (published with it)
      docs/validation/                                 Great Expectations Data Docs
      latest/                                          the newest snapshot's KPIs and tables (BI refresh)
      _locks/snapshot_date=D.lease | .lock             snapshot leases and their guards
      _work/<run_id>/                                  a live run's intermediate files (restricted)

An object-store warehouse (`s3://bucket/prefix`) has the same zones under its prefix, except
that `_snapshots/snapshot_date=D/` holds the versions and one pointer object, `current.json`,
instead of links, and the visible partitions hold copies (`object_snapshots.py`); a run works
in a local view of it under the scratch directory (`local_view.py`), `_work/` included.

Modules ask here for a path instead of spelling it out; no user path is ever put into a glob
pattern (a warehouse under `/data/wh[1]` works).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path, PurePath, PurePosixPath
from typing import TypeVar

RAW = Path("raw") / "orders"
ACCEPTED = Path("accepted") / "orders"
REJECTED = Path("rejected") / "orders"
SNAPSHOTS = Path("_snapshots")
MARTS = PurePosixPath("marts")
QUARANTINE = PurePosixPath("quarantine") / "orders"
RUNS = Path("runs")
REPORTS = PurePosixPath("reports")
DOCS = Path("docs") / "validation"
LATEST = Path("latest")
CATALOG = Path("custval.duckdb")  # the DuckDB catalog BI tools connect to
LOCKS = Path("_locks")
WORK = Path("_work")
MANIFEST_FILE = "manifest.json"
TABLE_FILE = "part-0.parquet"
HISTORY = "history"  # runs/snapshot_date=D/history/<run_id>.json: every run's manifest
POINTER_FILE = "current.json"  # object store: _snapshots/snapshot_date=D/current.json, the commit
# In a local view's root (`local_view.py`): the object-store warehouse it is a view of, and
# what was last copied between them, either way.
VIEW_MARKER = ".custval-remote.json"
SYNC_LEDGER = ".custval-synced.json"
SCRATCH_ENV = "CUSTVAL_SCRATCH"  # where local views of object-store warehouses live

# A warehouse root: a local directory, or a relative PurePosixPath (the keys of an object store).
Root = TypeVar("Root", bound=PurePath)

# Zones holding source values as received (PII included): mode 0700.
RESTRICTED_ZONES = ("raw", "accepted", "quarantine", "rejected", "_work")


def snapshot_partition(snapshot: date) -> str:
    return f"snapshot_date={snapshot.isoformat()}"


def ingest_partition(day: date) -> str:
    return f"ingest_date={day.isoformat()}"


def partition_date(name: str) -> date | None:
    """The date of a `key=YYYY-MM-DD` partition name (None for anything else)."""
    _, sep, value = name.partition("=")
    if not sep:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def dated_partitions(directory: Path, key: str) -> dict[date, Path]:
    """`key=YYYY-MM-DD` children of a directory, by date, listed (never globbed)."""
    if not directory.is_dir():
        return {}
    out = {}
    for entry in directory.iterdir():
        if entry.name.startswith(f"{key}="):
            day = partition_date(entry.name)
            if day is not None:
                out[day] = entry
    return dict(sorted(out.items()))


def manifest_path(warehouse: Root, snapshot: date) -> Root:
    return warehouse / RUNS / snapshot_partition(snapshot) / MANIFEST_FILE


def failure_path(warehouse: Root, snapshot: date) -> Root:
    """Why the last run of a snapshot failed (read by the next day's refusal message)."""
    return warehouse / RUNS / snapshot_partition(snapshot) / "_last_failure.json"


def table_partition(warehouse: Root, table: str, snapshot: date) -> Root:
    return warehouse / MARTS / table / snapshot_partition(snapshot)


def table_file(warehouse: Root, table: str, snapshot: date) -> Root:
    return table_partition(warehouse, table, snapshot) / TABLE_FILE


def accepted_partition(warehouse: Root, ingest_date: date) -> Root:
    return warehouse / ACCEPTED / ingest_partition(ingest_date)


def lease_file(warehouse: Root, snapshot: date, suffix: str) -> Root:
    return warehouse / LOCKS / f"{snapshot_partition(snapshot)}{suffix}"


def restrict(path: Path) -> None:
    """Only the pipeline's own user may enter (restricted zones hold source values, PII)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def snapshot_root(warehouse: Root, snapshot: date) -> Root:
    """`_snapshots/snapshot_date=D/`: the snapshot's versions (and its switch or pointer)."""
    return warehouse / SNAPSHOTS / snapshot_partition(snapshot)


def visible_path(warehouse: Root, snapshot: date, rel: PurePosixPath) -> Root:
    """Where readers find a version's file: `<zone…>/snapshot_date=D/<file>`."""
    return warehouse.joinpath(*rel.parent.parts) / snapshot_partition(snapshot) / rel.name
