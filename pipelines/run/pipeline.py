"""The run lifecycle, the same whether the CLI or the Airflow DAG drives it.

    begin      repair, check the order, take the leases            (`lifecycle.py`, `ordering.py`)
    ingest     batches of a landing directory that arrived late     (`rebuilds.py`)
    stages     extract -> validate -> stage -> marts -> publish -> manifest   (`stages.py`)
    finish     rebuild what the run's batches changed               (`rebuilds.py`)
    end        release the leases, delete the work directory -- on failure too

`run_all` is the CLI's run of one snapshot and `run_dates` a backfill; the Airflow tasks
(`pipelines/orchestration/tasks.py`) call the same steps, one task each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

from pipelines.context import RunContext
from pipelines.errors import RunLockedError
from pipelines.run.lifecycle import Leases, begin, discard_unpublished
from pipelines.run.ordering import OutOfOrderError, record_failure
from pipelines.run.rebuilds import finish, ingest_late
from pipelines.run.stages import STAGES, Hook, run_stage
from pipelines.storage import locking

__all__ = ["STAGES", "Leases", "OutOfOrderError", "begin", "run_all", "run_dates", "run_stage"]


log = logging.getLogger(__name__)


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
    try:
        leases = begin(ctx, wait_seconds)
    except BaseException:
        ctx.close_view()  # refused before any work: an s3:// warehouse's view goes
        raise
    result: dict[str, Any] = {}
    try:
        with _heartbeat(leases) as beat:
            late = ingest_late(ctx, leases, wait_seconds)
            for name in STAGES:
                if on_stage_start:
                    on_stage_start(name, ctx)
                beat.check()
                started = time.perf_counter()
                result = run_stage(name, ctx)
                seconds = time.perf_counter() - started
                log.info(
                    "%s done in %.1f s",
                    name,
                    seconds,
                    extra={
                        "snapshot_date": ctx.snapshot_date.isoformat(),
                        "run_id": ctx.run_id,
                        "stage": name,
                        "seconds": round(seconds, 3),
                    },
                )
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
