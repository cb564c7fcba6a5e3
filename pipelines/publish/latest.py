"""What BI tools read besides the marts: the warehouse's `latest/` folder.

`latest/kpis.json` holds the newest snapshot's kpi_summary row and `latest/tables.json` the
path of each table's partition in that snapshot, so a dashboard can show "as of" without
listing directories. Only a complete snapshot (its manifest is readable) counts. Written
atomically, like every other published file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import CustvalError
from pipelines.storage import layout
from pipelines.storage.jsonfile import read_json, write_json
from pipelines.storage.snapshots import published_snapshots


def refresh_latest(asset_extras: list[dict[str, Any]]) -> dict[str, Any]:
    """Refresh `latest/` of the warehouse the (newest) asset event names."""
    events = [e for e in asset_extras if e and e.get("warehouse")]
    if not events:
        raise CustvalError(
            "no asset event names a warehouse; was this run triggered by custval_nightly?"
        )
    newest = max(events, key=lambda e: e.get("snapshot_date", ""))
    warehouse = Path(newest["warehouse"])
    published = published_snapshots(warehouse)
    if not published:
        raise CustvalError(f"{warehouse} has no published snapshot yet")
    snapshot = published[-1].isoformat()
    manifest = read_json(layout.manifest_path(warehouse, published[-1])) or {}
    tables = {name: entry["path"] for name, entry in sorted(manifest.get("tables", {}).items())}
    kpis = (
        pl.read_parquet(Path(tables["kpi_summary"]) / "part-0.parquet", glob=False)
        .with_columns(pl.col(pl.Decimal).cast(pl.Float64))  # money (DECIMAL) as JSON numbers
        .to_dicts()[0]
        if "kpi_summary" in tables
        else {}
    )
    latest = warehouse / layout.LATEST
    write_json(latest / "kpis.json", {"snapshot_date": snapshot, **kpis})
    write_json(latest / "tables.json", tables)
    return {"warehouse": str(warehouse), "snapshot_date": snapshot, "tables": len(tables)}
