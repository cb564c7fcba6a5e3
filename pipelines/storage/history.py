"""Accepted history of incremental sources: every ingested batch, the newest version of each order.

Validated batches of `landing` and `postgres` sources are kept in the accepted zone,
`DIR/accepted/orders/ingest_date=D/`: the accepted rows (`part-0.parquet`), the batch's
record (`_batch.json`: what was extracted, the validation counts, a fingerprint of the
accepted rows, the earliest order in it) and its quarantine (`_quarantine.parquet`). Only a
batch that passed every gate is written here, so the accepted zone is also the record of what
has been ingested: a rejected batch is not in it and is read again by the retried run, and
the PostgreSQL watermark is that of the newest accepted batch.

A snapshot reads the batches ingested up to its horizon and keeps, per order_id, the version
with the latest `updated_at`, then the latest ingest date, then the row read last: an update
to an old order replaces it, a re-delivered order counts once.

What a snapshot means: snapshot X holds every order placed before X+1 00:00 UTC among the
batches ingested up to min(X + reprocess_days, the newest ingested batch). The run for day D
builds D and rebuilds every snapshot whose batches changed in a way that matters to it -- a
late order for it, a batch that arrived late (whenever it arrives) -- so a past snapshot
always equals what running the days in order would give.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.storage import layout
from pipelines.storage.jsonfile import read_json
from pipelines.storage.layout import accepted_partition

BATCH_RECORD = "_batch.json"
BATCH_QUARANTINE = "_quarantine.parquet"
BATCH_FILE = "part-0.parquet"


def ingested_dates(warehouse: Path) -> list[date]:
    """Dates of the batches that passed validation, oldest first."""
    root = warehouse / layout.ACCEPTED
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        if p.name.startswith("ingest_date=") and (p / BATCH_RECORD).is_file():
            out.append(date.fromisoformat(p.name.split("=", 1)[1]))
    return sorted(out)


def horizon(
    warehouse: Path, snapshot: date, reprocess_days: int, dates: list[date] | None = None
) -> date:
    """The newest ingest date a snapshot may use: min(snapshot + window, newest batch)."""
    dates = ingested_dates(warehouse) if dates is None else dates
    newest = dates[-1] if dates else snapshot
    return min(snapshot + timedelta(days=reprocess_days), max(newest, snapshot))


def batch_record(warehouse: Path, ingest_date: date) -> dict[str, Any] | None:
    return read_json(accepted_partition(warehouse, ingest_date) / BATCH_RECORD)


def batch_quarantine(warehouse: Path, ingest_date: date) -> Path | None:
    path = accepted_partition(warehouse, ingest_date) / BATCH_QUARANTINE
    return path if path.is_file() else None


def batch_fingerprints(warehouse: Path, until: date) -> dict[str, str]:
    """ingest date -> fingerprint of its accepted rows, for every batch up to `until`."""
    out = {}
    for d in ingested_dates(warehouse):
        if d <= until:
            record = batch_record(warehouse, d) or {}
            out[d.isoformat()] = str(record.get("fingerprint", ""))
    return out


def accepted_history(warehouse: Path, until: date) -> pl.DataFrame:
    """The newest version of every order in the batches ingested up to `until`."""
    parts = [
        (d, accepted_partition(warehouse, d) / BATCH_FILE)
        for d in ingested_dates(warehouse)
        if d <= until
    ]
    if not parts:
        return pl.DataFrame()
    frames = [
        pl.read_parquet(path, glob=False).with_columns(pl.lit(d).alias("_ingest_date"))
        for d, path in parts
    ]
    history = pl.concat(frames, how="vertical_relaxed")
    repeated = (
        history.select("order_id").group_by("order_id").len().filter(pl.col("len") > 1)["order_id"]
    )
    if repeated.len() == 0:
        return history.drop("_ingest_date", "_row")
    contested = history.filter(pl.col("order_id").is_in(repeated.implode()))
    newest = contested.sort(
        ["order_id", "updated_at", "_ingest_date", "_row"],
        descending=[False, True, True, True],
        nulls_last=True,
    ).unique(subset="order_id", keep="first", maintain_order=True)
    return pl.concat([history.filter(~pl.col("order_id").is_in(repeated.implode())), newest]).drop(
        "_ingest_date", "_row"
    )
