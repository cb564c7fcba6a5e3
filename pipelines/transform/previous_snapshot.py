"""The previous snapshot's RFM segments: the `source_previous_rfm` table of the SQL models.

The segment transitions compare each customer's RFM segment with the one they had in the
previous snapshot: the latest snapshot published strictly before the run's snapshot date
(whatever order the dates were built or rebuilt in, so a rerun of a date reads the same
previous snapshot and gives the same rows, as long as nothing was published in between). Its
`customer_rfm` and `segment_transitions` are read from the one version its `current` link
names, so the two files always come from the same publish.

The table is empty (with its types) when there is no earlier snapshot; `segment_changed_on`
is null when the previous snapshot was published before `segment_transitions` existed.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from pipelines.storage import layout
from pipelines.storage.snapshots import current_version, published_snapshots

SCHEMA: dict[str, pl.DataType] = {
    "snapshot_date": pl.Date(),
    "customer_id": pl.String(),
    "rfm_segment": pl.String(),
    "monetary_total": pl.Float64(),
    "segment_changed_on": pl.Date(),
}


def empty_previous_rfm() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def _table_file(warehouse: Path, snapshot: date, table: str) -> Path:
    version = current_version(warehouse, snapshot)
    if version is not None and version.is_dir():
        return layout.version_table_file(version, table)
    return layout.table_file(warehouse, table, snapshot)


def previous_snapshot(warehouse: Path, before: date) -> date | None:
    """The latest published snapshot before `before` that has a customer_rfm table."""
    for day in sorted((d for d in published_snapshots(warehouse) if d < before), reverse=True):
        if _table_file(warehouse, day, "customer_rfm").is_file():
            return day
    return None


def previous_rfm(warehouse: Path, before: date) -> pl.DataFrame:
    """Each customer of the previous snapshot: its date, rfm_segment, revenue, segment_changed_on."""
    day = previous_snapshot(warehouse, before)
    if day is None:
        return empty_previous_rfm()
    rfm = pl.read_parquet(
        _table_file(warehouse, day, "customer_rfm"),
        columns=["customer_id", "rfm_segment", "monetary_total"],
        glob=False,
    )
    transitions = _table_file(warehouse, day, "segment_transitions")
    if transitions.is_file():
        changed = pl.read_parquet(
            transitions, columns=["customer_id", "segment_changed_on"], glob=False
        )
        rfm = rfm.join(changed, on="customer_id", how="left")
    else:
        rfm = rfm.with_columns(segment_changed_on=pl.lit(None, pl.Date))
    return rfm.with_columns(snapshot_date=pl.lit(day, pl.Date)).select(
        [pl.col(name).cast(dtype) for name, dtype in SCHEMA.items()]
    )
