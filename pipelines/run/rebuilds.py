"""Late batches and rebuilds: every snapshot ends up as if the days had run in order, on time.

- A landing day's folder that arrives after its day (however late) is ingested on its own, with
  its own gates, under the lease of its day.
- Each snapshot records the fingerprints of the batches it was built from; a run rebuilds every
  published snapshot whose batches within its horizon changed in a way that matters to it: a
  late order, a correction, a batch that arrived late.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.context import RunContext, snapshot_end
from pipelines.errors import CustvalError
from pipelines.publish import manifest
from pipelines.run.lifecycle import Leases
from pipelines.run.stages import INGEST_STAGES, REBUILD_STAGES, Hook, run_stage, window
from pipelines.sources import arrival_dirs
from pipelines.storage import snapshots
from pipelines.storage.history import BATCH_FILE, batch_record, horizon, ingested_dates
from pipelines.storage.layout import accepted_partition

log = logging.getLogger(__name__)


def late_arrivals(ctx: RunContext) -> list[date]:
    """Arrival folders of days before D that have no accepted batch: they came late."""
    if ctx.source_spec.kind != "landing":
        return []
    have = set(ingested_dates(ctx.warehouse))
    folders = arrival_dirs(Path(ctx.source_spec.location).expanduser())
    return sorted(
        d
        for d in (date.fromisoformat(k) for k in folders)
        if d < ctx.snapshot_date and d not in have
    )


def ingest_late(ctx: RunContext, leases: Leases, wait_seconds: float = 0) -> list[str]:
    """Ingest each late batch on its own (its own gates), under the lease of its day."""
    done = []
    for day in late_arrivals(ctx):
        leases.take([day], wait_seconds)
        sub = ctx.for_batch(day)
        try:
            for name in INGEST_STAGES:
                run_stage(name, sub)
        except CustvalError as exc:
            raise type(exc)(f"the batch that arrived late for {day}: {exc}") from None
        finally:
            sub.cleanup()
        log.info("ingested the late batch of %s", day)
        done.append(day.isoformat())
    return done


def _matters(ingest: date, record: dict[str, Any], end: datetime, ctx: RunContext) -> bool:
    """Whether a batch holds an order placed before `end` (a late order or an update)."""
    first = record.get("min_order_ts")
    if "min_order_ts" in record:
        return first is not None and datetime.fromisoformat(first) < end
    part = accepted_partition(ctx.warehouse, ingest) / BATCH_FILE  # a record from an older version
    return bool(
        pl.scan_parquet(part, glob=False)
        .filter(pl.col("order_ts") < end)
        .select(pl.len())
        .collect()
        .item()
    )


def snapshots_to_rebuild(ctx: RunContext) -> list[date]:
    """Published snapshots whose batches changed in a way that matters to them, oldest first.

    A snapshot records the fingerprints of the batches it was built from; it is rebuilt when a
    batch within its horizon is new or different and holds an order placed before its end --
    a late order, a correction, a batch that arrived late (however late) -- so it ends up as
    if the days had run in order with every batch on time.
    """
    if not ctx.source_spec.incremental:
        return []
    dates = ingested_dates(ctx.warehouse)
    if not dates:
        return []
    records = {d: batch_record(ctx.warehouse, d) or {} for d in dates}
    reprocess_days = ctx.config.sources.reprocess_days
    in_window = set(window(ctx))
    out = []
    for snap in snapshots.published_snapshots(ctx.warehouse):
        if snap == ctx.snapshot_date:
            continue
        built = manifest.read_manifest(ctx.warehouse, snap) or {}
        if built.get("source_kind") not in ("landing", "postgres"):
            continue
        until = horizon(ctx.warehouse, snap, reprocess_days, dates)
        should = {d: str(records[d].get("fingerprint", "")) for d in dates if d <= until}
        had = built.get("history_batches")
        if had is None:  # built by an older version that kept no fingerprints
            if snap in in_window:
                out.append(snap)
            continue
        end = snapshot_end(snap)
        removed = [d for d in had if date.fromisoformat(d) not in should]
        changed = [d for d, fp in should.items() if had.get(d.isoformat()) != fp]
        if removed or any(_matters(d, records[d], end, ctx) for d in changed):
            out.append(snap)
    return out


def rebuild(ctx: RunContext, snapshot: date, on_stage_end: Hook | None = None) -> dict[str, Any]:
    """Recompute a past snapshot from the accepted history (no new batch)."""
    sub = ctx.for_snapshot(snapshot)
    result: dict[str, Any] = {}
    try:
        for name in REBUILD_STAGES:
            result = run_stage(name, sub)
            if on_stage_end:
                on_stage_end(name, sub, result)
    finally:
        sub.cleanup()
    return result


def finish(
    ctx: RunContext, leases: Leases, on_stage_end: Hook | None = None, wait_seconds: float = 0
) -> list[str]:
    """Rebuild what the run's batches changed; returns the rebuilt dates."""
    rebuilt = []
    for snap in snapshots_to_rebuild(ctx):
        leases.take([snap], wait_seconds)
        rebuild(ctx, snap, on_stage_end)
        rebuilt.append(snap.isoformat())
    return rebuilt
