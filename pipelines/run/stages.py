"""The stages of a run, by name, and how one is run and measured.

    extract -> validate -> stage -> marts -> publish -> manifest (the commit)

Each stage reads what earlier stages left in the run's work dir and returns a small dict of
paths and counts (what Airflow passes through XCom). `run_stage` measures wall time and peak
memory around every stage for the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from pipelines.context import RunContext
from pipelines.errors import CustvalError
from pipelines.extract import extract
from pipelines.publish import manifest, publish
from pipelines.run import sync
from pipelines.run.metrics import measure
from pipelines.storage import layout
from pipelines.storage.jsonfile import write_json
from pipelines.transform import marts, snapshot_orders
from pipelines.validate import validate

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


def run_stage(name: str, ctx: RunContext) -> dict[str, Any]:
    if not ctx.work_dir.is_dir():  # created only now: the run holds its leases
        layout.restrict(ctx.warehouse / layout.WORK)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
    sync.before_stage(name, ctx)  # an object-store warehouse: what the stage reads, brought up
    try:
        if name == "manifest":  # written last, recording the other stages' measurements
            return manifest.run(ctx)
        with measure() as m:
            result = STAGES[name](ctx)
    except CustvalError as exc:
        sync.after_stage_failed(name, ctx)
        named = sync.as_published(ctx, exc)
        if named is exc:
            raise
        raise named from exc
    except BaseException:
        sync.after_stage_failed(name, ctx)
        raise
    sync.after_stage(name, ctx)  # and what it wrote, copied up
    write_json(ctx.work_dir / "metrics" / f"{name}.json", m.as_dict())
    return result


def window(ctx: RunContext) -> list[date]:
    """The past snapshots an incremental run rebuilds when late orders arrive (newest first)."""
    if not ctx.source_spec.incremental:
        return []
    days = ctx.config.sources.reprocess_days
    return [ctx.snapshot_date - timedelta(days=k) for k in range(1, days + 1)]
