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
from pipelines.storage import layout, local_view
from pipelines.storage.jsonfile import read_json, write_json
from pipelines.storage.object_store import is_object_url
from pipelines.storage.snapshots import published_snapshots


def refresh_latest(asset_extras: list[dict[str, Any]]) -> dict[str, Any]:
    """Refresh `latest/` of the warehouse the (newest) asset event names."""
    events = [e for e in asset_extras if e and e.get("warehouse")]
    if not events:
        raise CustvalError(
            "no asset event names a warehouse; was this run triggered by custval_nightly?"
        )
    newest = max(events, key=lambda e: e.get("snapshot_date", ""))
    if is_object_url(str(newest["warehouse"])):  # read and written through a local view
        from pipelines.context import check_warehouse

        view = check_warehouse(str(newest["warehouse"]))
        try:
            local_view.pull_manifests(view)
            return _refresh(view)
        finally:
            local_view.close(view)
    return _refresh(Path(newest["warehouse"]))


def _refresh(warehouse: Path) -> dict[str, Any]:
    store = local_view.remote_of(warehouse)
    where = store.url if store is not None else str(warehouse)
    published = published_snapshots(warehouse)
    if not published:
        raise CustvalError(f"{where} has no published snapshot yet")
    snapshot = published[-1].isoformat()
    manifest = read_json(layout.manifest_path(warehouse, published[-1])) or {}
    tables = {name: entry["path"] for name, entry in sorted(manifest.get("tables", {}).items())}
    kpi_file = Path(tables.get("kpi_summary", "")) / "part-0.parquet"
    if store is not None and "kpi_summary" in tables:  # the manifest names it by its URL
        kpi_file = layout.table_file(warehouse, "kpi_summary", published[-1])
        local_view.pull(warehouse, kpi_file.parent.relative_to(warehouse).as_posix())
    kpis = (
        pl.read_parquet(kpi_file, glob=False)
        .with_columns(pl.col(pl.Decimal).cast(pl.Float64))  # money (DECIMAL) as JSON numbers
        .to_dicts()[0]
        if "kpi_summary" in tables
        else {}
    )
    latest = warehouse / layout.LATEST
    write_json(latest / "kpis.json", {"snapshot_date": snapshot, **kpis})
    write_json(latest / "tables.json", tables)
    local_view.push(warehouse, layout.LATEST.as_posix())  # an object-store warehouse: there
    return {"warehouse": where, "snapshot_date": snapshot, "tables": len(tables)}
