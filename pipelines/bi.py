"""What BI tools read besides the marts: the warehouse's `latest/` folder.

`latest/kpis.json` holds the newest snapshot's kpi_summary row and `latest/tables.json` the
path of each table's newest partition, so a dashboard can show "as of" without listing
directories. Written atomically, like every other published file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import CustvalError
from pipelines.jsonfile import write_json


def newest_partition(table_dir: Path) -> Path | None:
    parts = sorted(p for p in table_dir.glob("snapshot_date=*") if p.is_dir())
    return parts[-1] if parts else None


def refresh_latest(asset_extras: list[dict[str, Any]]) -> dict[str, Any]:
    """Refresh `latest/` of the warehouse the (newest) asset event names."""
    events = [e for e in asset_extras if e and e.get("warehouse")]
    if not events:
        raise CustvalError("no asset event names a warehouse; was this run triggered by custval_nightly?")
    newest = max(events, key=lambda e: e.get("snapshot_date", ""))
    warehouse = Path(newest["warehouse"])
    tables = {
        d.name: str(part)
        for d in sorted((warehouse / "marts").iterdir())
        if d.is_dir() and (part := newest_partition(d)) is not None
    }
    kpis = pl.read_parquet(Path(tables["kpi_summary"])).to_dicts()[0] if "kpi_summary" in tables else {}
    latest = warehouse / "latest"
    snapshot = Path(tables.get("kpi_summary", "=")).name.split("=", 1)[1]
    write_json(latest / "kpis.json", {"snapshot_date": snapshot, **kpis})
    write_json(latest / "tables.json", tables)
    return {"warehouse": str(warehouse), "snapshot_date": snapshot, "tables": len(tables)}
