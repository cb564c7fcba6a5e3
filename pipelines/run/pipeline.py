"""The pipeline: one run lifecycle, the same whether the CLI or the Airflow DAG drives it.

    begin      repair what crashed runs left (`recovery.py`), refuse or wait while an earlier
               day this snapshot depends on is not built yet, take the snapshot leases
    ingest     (landing directories) batches that arrived late for earlier days
    stages     extract -> validate -> stage -> marts -> publish -> manifest (the commit)
    finish     rebuild every past snapshot whose batches changed in a way that matters to it
    end        release the leases, delete the work directory -- on failure too

Each stage reads what earlier stages left in the run's work dir and returns a small dict of
paths and counts (what Airflow passes through XCom). `run_stage` measures wall time and peak
memory around every stage for the manifest.

Ordering is the pipeline's job: a snapshot of an incremental source (landing, PostgreSQL) is
computed from batches earlier runs ingested, so snapshot D is built only once snapshot D-1
is (the first snapshot of a warehouse excepted). Runs of different days can then go at any
parallelism -- an Airflow backfill starts up to ten at once -- and give what running them in
order gives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time as clock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.context import WORK, RunContext, snapshot_end
from pipelines.errors import CustvalError, RunLockedError
from pipelines.extract import extract
from pipelines.publish import manifest, publish
from pipelines.run.metrics import measure
from pipelines.sources import arrival_dirs
from pipelines.storage import locking, snapshots
from pipelines.storage.history import (
    BATCH_FILE,
    accepted_partition,
    batch_record,
    horizon,
    ingested_dates,
)
from pipelines.storage.jsonfile import write_json
from pipelines.storage.recovery import recover_warehouse
from pipelines.transform import marts, snapshot_orders
from pipelines.validate import validate

log = logging.getLogger("custval.pipeline")

STAGES: dict[str, Callable[[RunContext], dict[str, Any]]] = {
    "extract": extract.run,
    "validate": validate.run,
    "stage": snapshot_orders.run,
    "marts": marts.run,
    "publish": publish.run,
    "manifest": manifest.run,
}
INGEST_STAGES = ("extract", "validate")
REBUILD_STAGES = ("stage", "marts", "publish", "manifest")

Hook = Callable[[str, RunContext, dict[str, Any]], None]


class OutOfOrderError(CustvalError):
    """A snapshot whose inputs depend on an earlier day that has not been built."""


def run_stage(name: str, ctx: RunContext) -> dict[str, Any]:
    if not ctx.work_dir.is_dir():  # created only now: the run holds its leases
        snapshots.restrict(ctx.warehouse / WORK)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
    if name == "manifest":  # written last, recording the other stages' measurements
        return manifest.run(ctx)
    with measure() as m:
        result = STAGES[name](ctx)
    write_json(ctx.work_dir / "metrics" / f"{name}.json", m.as_dict())
    return result


def window(ctx: RunContext) -> list[date]:
    """The past snapshots an incremental run rebuilds when late orders arrive (newest first)."""
    if not ctx.source_spec.incremental:
        return []
    days = ctx.config.sources.reprocess_days
    return [ctx.snapshot_date - timedelta(days=k) for k in range(1, days + 1)]


# ------------------------------------------------------------------------------------------
# begin: ordering and leases


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


def _failure_path(ctx: RunContext, snapshot: date) -> Path:
    return ctx.warehouse / "runs" / f"snapshot_date={snapshot.isoformat()}" / "_last_failure.json"


def _last_failure(ctx: RunContext, snapshot: date) -> str | None:
    try:
        record = json.loads(_failure_path(ctx, snapshot).read_text())
    except (OSError, ValueError):
        return None
    return f"{record.get('error')} (run {record.get('run_id')}, {record.get('at')})"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:500] if lines else type(error).__name__


def record_failure(ctx: RunContext, error: BaseException) -> None:
    """Note why the run failed beside the snapshot's manifest (read by the next day's run)."""
    with contextlib.suppress(
        OSError
    ):  # a full or read-only disk: the error itself is what the user sees
        write_json(
            _failure_path(ctx, ctx.snapshot_date),
            {
                "run_id": ctx.run_id,
                "at": datetime.now().astimezone().isoformat(),
                "error": _first_line(error),
            },
        )


@dataclass
class Leases:
    """The snapshot leases a run holds; more are taken when it rebuilds beyond its window."""

    ctx: RunContext
    holder: locking.Holder = "process"
    held: list[date] = field(default_factory=list)

    def take(self, snapshots: list[date], wait_seconds: float = 0) -> None:
        wanted = [s for s in snapshots if s not in self.held]
        if wanted:
            locking.acquire_all(
                self.ctx.warehouse,
                wanted,
                self.ctx.owner_run_id,
                wait_seconds=wait_seconds,
                holder=self.holder,
            )
            self.held.extend(wanted)

    def release(self) -> None:
        locking.release_all(self.ctx.warehouse, self.held, self.ctx.owner_run_id)
        self.held.clear()


def begin(ctx: RunContext, wait_seconds: float = 0, holder: locking.Holder = "process") -> Leases:
    """Repair, check the order, take the leases: what every run does before its first stage."""
    if wait_seconds != wait_seconds or wait_seconds < 0 or wait_seconds == float("inf"):
        raise CustvalError(f"--wait must be a number of seconds >= 0, got {wait_seconds}")
    recover_warehouse(ctx.warehouse)
    deadline = clock.monotonic() + wait_seconds
    leases = Leases(ctx, holder)
    while True:
        reason = out_of_order(ctx)
        if reason is None:
            leases.take(
                [ctx.snapshot_date, *window(ctx)],
                wait_seconds=max(0.0, deadline - clock.monotonic()),
            )
            reason = out_of_order(ctx)  # D-1's run may have ended meanwhile, or begun
            if reason is None:
                return leases
            leases.release()
        if clock.monotonic() >= deadline:
            raise OutOfOrderError(reason)
        clock.sleep(min(5.0, max(0.1, deadline - clock.monotonic())))


def ready(ctx: RunContext) -> str | None:
    """For a sensor: why the run cannot begin now (None when it can)."""
    reason = out_of_order(ctx)
    if reason is not None:
        return reason
    for snapshot in [ctx.snapshot_date, *window(ctx)]:
        holder = locking.holder_of(ctx.warehouse, snapshot)
        if holder is not None and holder != ctx.owner_run_id:
            return f"snapshot {snapshot} is being built by run {holder}"
    return None


# ------------------------------------------------------------------------------------------
# ingest: late batches of a landing directory


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


# ------------------------------------------------------------------------------------------
# finish: rebuilds


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


def discard_unpublished(ctx: RunContext) -> None:
    """A failed run's version of the snapshot, if publish had begun it, is never committed."""
    try:
        state = json.loads((ctx.work_dir / "published.json").read_text())
    except (OSError, ValueError):
        return
    snapshots.discard(ctx.warehouse, ctx.snapshot_date, Path(state["version"]))


# ------------------------------------------------------------------------------------------
# the CLI's run


@contextmanager
def _heartbeat(leases: Leases) -> Iterator[locking.Heartbeat]:
    beat = locking.Heartbeat(leases.ctx.warehouse, leases.held, leases.ctx.owner_run_id)
    with beat:
        yield beat


def run_all(
    ctx: RunContext,
    on_stage_start: Callable[[str, RunContext], None] | None = None,
    on_stage_end: Hook | None = None,
    keep_work_dir: bool = False,
    wait_seconds: float = 0,
) -> dict[str, Any]:
    """Run every stage for one snapshot (and the rebuilds it causes); returns its manifest."""
    leases = begin(ctx, wait_seconds)
    result: dict[str, Any] = {}
    try:
        with _heartbeat(leases) as beat:
            late = ingest_late(ctx, leases, wait_seconds)
            for name in STAGES:
                if on_stage_start:
                    on_stage_start(name, ctx)
                beat.check()
                result = run_stage(name, ctx)
                if on_stage_end:
                    on_stage_end(name, ctx, result)
            rebuilt = finish(ctx, leases, on_stage_end, wait_seconds)
    except BaseException as exc:
        discard_unpublished(ctx)
        if not isinstance(exc, RunLockedError) and not isinstance(exc, OutOfOrderError):
            record_failure(ctx, exc)
        ctx.cleanup()
        raise
    finally:
        leases.release()
    if not keep_work_dir:
        ctx.cleanup()
    return {**result, "rebuilt_snapshots": rebuilt, "late_batches": late}


def run_dates(
    make_context: Callable[[date], RunContext],
    start: date,
    end: date,
    on_date_end: Callable[[date, dict[str, Any] | None, BaseException | None], None] | None = None,
    stop_on_error: bool = True,
    wait_seconds: float = 0,
) -> list[tuple[date, dict[str, Any] | None, BaseException | None]]:
    """Run the snapshots start..end in order (a backfill): the same runs as the nightly ones."""
    if end < start:
        raise ValueError(f"the backfill ends ({end}) before it starts ({start})")
    results = []
    day = start
    while day <= end:
        try:
            outcome: tuple[date, dict[str, Any] | None, BaseException | None] = (
                day,
                run_all(make_context(day), wait_seconds=wait_seconds),
                None,
            )
        except Exception as exc:  # noqa: BLE001 - reported per date, then stop (or go on)
            outcome = (day, None, exc)
        results.append(outcome)
        if on_date_end:
            on_date_end(*outcome)
        if outcome[2] is not None and stop_on_error:
            break
        day += timedelta(days=1)
    return results
