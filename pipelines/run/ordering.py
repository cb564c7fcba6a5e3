"""Ordering: a snapshot of an incremental source is built only once the day before it is.

A snapshot of a landing directory or a PostgreSQL table is computed from the batches earlier
runs ingested, so snapshot D waits for snapshot D-1 (the first snapshot of a warehouse
excepted). Runs of many days may then be started at once -- an Airflow backfill starts up to
ten -- and give what running them in order gives. A failed run notes why beside its manifest,
so the next day's refusal can say what to fix.
"""

from __future__ import annotations

import contextlib
import json
from datetime import date, datetime, timedelta

from pipelines.context import RunContext
from pipelines.errors import CustvalError
from pipelines.run.stages import window
from pipelines.storage import layout, locking, snapshots
from pipelines.storage.jsonfile import write_json


class OutOfOrderError(CustvalError):
    """A snapshot whose inputs depend on an earlier day that has not been built."""


def out_of_order(ctx: RunContext) -> str | None:
    """Why snapshot D cannot be built yet (None when it can).

    A files source's snapshot depends on its own batch only. An incremental source's depends
    on every batch ingested before it, so D waits for D-1's run, unless no earlier snapshot
    of this warehouse exists (D starts the history).
    """
    if not ctx.source_spec.incremental:
        return None
    built = snapshots.published_snapshots(ctx.warehouse)
    earlier = [d for d in built if d < ctx.snapshot_date]
    previous = ctx.snapshot_date - timedelta(days=1)
    if not earlier or previous in built:
        return None
    start = earlier[-1] + timedelta(days=1)
    failed = _last_failure(ctx, previous)
    because = f"; its last run failed: {failed}" if failed else ""
    return (
        f"snapshot {ctx.snapshot_date} needs snapshot {previous} first, which has not been built{because} "
        f"(an incremental source's snapshots are built in date order); run "
        f"`custval backfill --start {start} --end {ctx.snapshot_date}`, or wait for the runs in between"
    )


def _last_failure(ctx: RunContext, snapshot: date) -> str | None:
    try:
        record = json.loads(layout.failure_path(ctx.warehouse, snapshot).read_text())
    except (OSError, ValueError):
        return None
    return f"{record.get('error')} (run {record.get('run_id')}, {record.get('at')})"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:500] if lines else type(error).__name__


def record_failure(ctx: RunContext, error: BaseException) -> None:
    """Note why the run failed beside the snapshot's manifest (read by the next day's run)."""
    from pipelines.run import sync

    with contextlib.suppress(
        OSError, CustvalError
    ):  # a full or read-only disk: the error itself is what the user sees
        path = layout.failure_path(ctx.warehouse, ctx.snapshot_date)
        write_json(
            path,
            {
                "run_id": ctx.run_id,
                "at": datetime.now().astimezone().isoformat(),
                "error": _first_line(error),
            },
        )
        sync.push_file(ctx, path)  # an object-store warehouse: beside the manifest there


def ready(ctx: RunContext) -> str | None:
    """For a sensor: why the run cannot begin now (None when it can)."""
    from pipelines.run import sync

    sync.refresh(ctx)
    reason = out_of_order(ctx)
    if reason is not None:
        return reason
    for snapshot in [ctx.snapshot_date, *window(ctx)]:
        holder = locking.holder_of(ctx.warehouse, snapshot)
        if holder is not None and holder != ctx.owner_run_id:
            return f"snapshot {snapshot} is being built by run {holder}"
    return None
