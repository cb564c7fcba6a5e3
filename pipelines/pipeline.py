"""The pipeline: six stages, the same functions whether the CLI or the Airflow DAG calls them.

    extract -> validate -> stage -> marts -> publish -> manifest   (then, for incremental
    sources, rebuild the past snapshots that late orders belong to)

Each stage reads what earlier stages left in the run's work dir and returns a small dict of
paths and counts (what Airflow passes through XCom). `run_stage` measures wall time and peak
memory around every stage for the manifest. A run holds a lease on every snapshot it may
publish (`pipelines/locking.py`), so two runs never write the same snapshot at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import polars as pl

from pipelines import extract, locking, manifest, marts, publish, stage, validate
from pipelines.config import load_config
from pipelines.context import RunContext
from pipelines.history import accepted_partition, ingested_dates
from pipelines.metrics import measure

STAGES: dict[str, Callable[[RunContext], dict[str, Any]]] = {
    "extract": extract.run,
    "validate": validate.run,
    "stage": stage.run,
    "marts": marts.run,
    "publish": publish.run,
    "manifest": manifest.run,
}
REBUILD_STAGES = ("stage", "marts", "publish", "manifest")

Hook = Callable[[str, RunContext, dict[str, Any]], None]


def run_stage(name: str, ctx: RunContext) -> dict[str, Any]:
    if name == "manifest":  # written last, recording the other stages' measurements
        return manifest.run(ctx)
    with measure() as m:
        result = STAGES[name](ctx)
    metrics_dir = ctx.work_dir / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    (metrics_dir / f"{name}.json").write_text(json.dumps(m.as_dict()))
    return result


def window(ctx: RunContext) -> list[date]:
    """The past snapshots an incremental run may rebuild (newest first)."""
    if not ctx.source_spec.incremental:
        return []
    days = load_config(ctx.config_path).sources.reprocess_days
    return [ctx.snapshot_date - timedelta(days=k) for k in range(1, days + 1)]


@contextmanager
def leases(ctx: RunContext, snapshots: list[date], wait_seconds: float = 0) -> Iterator[None]:
    locking.acquire_all(ctx.warehouse, snapshots, ctx.run_id, wait_seconds=wait_seconds)
    try:
        yield
    finally:
        locking.release_all(ctx.warehouse, snapshots, ctx.run_id)


def snapshots_to_rebuild(ctx: RunContext) -> list[date]:
    """Past snapshots in the window whose history gained orders placed on or before them.

    A snapshot is rebuilt when it was never built, or when a batch ingested after the one it
    was built from holds an order placed before its end -- a late arrival. Oldest first.
    """
    dates = ingested_dates(ctx.warehouse)
    if not dates:
        return []
    reprocess_days = load_config(ctx.config_path).sources.reprocess_days
    out = []
    for snap in sorted(window(ctx)):
        if snap < dates[0]:
            continue
        until = min(snap + timedelta(days=reprocess_days), dates[-1])
        built = manifest.read_manifest(ctx.warehouse, snap)
        built_until = date.fromisoformat(built["history_until"]) if built and built.get("history_until") else None
        if built_until is None:
            out.append(snap)
            continue
        end = datetime.combine(snap + timedelta(days=1), time(0), tzinfo=UTC)
        newer = [d for d in dates if built_until < d <= until]
        if any(_has_orders_before(ctx, d, end) for d in newer):
            out.append(snap)
    return out


def _has_orders_before(ctx: RunContext, ingest: date, end: datetime) -> bool:
    part = accepted_partition(ctx.warehouse, ingest) / "part-0.parquet"
    return bool(pl.scan_parquet(part).filter(pl.col("order_ts") < end).select(pl.len()).collect().item())


def rebuild(ctx: RunContext, snapshot: date, on_stage_end: Hook | None = None) -> dict[str, Any]:
    """Recompute a past snapshot from the accepted history (no new batch)."""
    sub = ctx.for_snapshot(snapshot)
    result: dict[str, Any] = {}
    for name in REBUILD_STAGES:
        result = run_stage(name, sub)
        if on_stage_end:
            on_stage_end(name, sub, result)
    sub.cleanup()
    return result


def run_all(
    ctx: RunContext,
    on_stage_start: Callable[[str, RunContext], None] | None = None,
    on_stage_end: Hook | None = None,
    keep_work_dir: bool = False,
    wait_seconds: float = 0,
) -> dict[str, Any]:
    """Run every stage for one snapshot (and rebuild the window); returns its manifest."""
    result: dict[str, Any] = {}
    with leases(ctx, [ctx.snapshot_date, *window(ctx)], wait_seconds):
        for name in STAGES:
            if on_stage_start:
                on_stage_start(name, ctx)
            result = run_stage(name, ctx)
            if on_stage_end:
                on_stage_end(name, ctx, result)
        rebuilt = []
        for snap in snapshots_to_rebuild(ctx):
            rebuild(ctx, snap, on_stage_end)
            rebuilt.append(snap.isoformat())
    if not keep_work_dir:
        ctx.cleanup()
    return {**result, "rebuilt_snapshots": rebuilt}


def run_dates(
    make_context: Callable[[date], RunContext],
    start: date,
    end: date,
    on_date_end: Callable[[date, dict[str, Any] | None, BaseException | None], None] | None = None,
    stop_on_error: bool = True,
) -> list[tuple[date, dict[str, Any] | None, BaseException | None]]:
    """Run the snapshots start..end in order (a backfill): the same runs as the nightly ones."""
    if end < start:
        raise ValueError(f"the backfill ends ({end}) before it starts ({start})")
    results = []
    day = start
    while day <= end:
        try:
            outcome: tuple[date, dict[str, Any] | None, BaseException | None] = (day, run_all(make_context(day)), None)
        except Exception as exc:  # noqa: BLE001 - reported per date, then stop (or go on)
            outcome = (day, None, exc)
        results.append(outcome)
        if on_date_end:
            on_date_end(*outcome)
        if outcome[2] is not None and stop_on_error:
            break
        day += timedelta(days=1)
    return results
