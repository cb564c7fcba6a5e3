"""The stages of a run, by name, and how one is run and measured.

    extract -> validate -> stage -> marts -> publish -> manifest (the commit)

Each stage reads what earlier stages left in the run's work dir and returns a small dict of
paths and counts (what Airflow passes through XCom). `run_stage` measures wall time and peak
memory around every stage for the manifest.

A stage's module is imported when the stage first runs: a process that only publishes (an
Airflow task, a crash test's child) does not pay for Great Expectations, DuckDB's models or
SciPy's fitters at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from pipelines.context import RunContext
from pipelines.errors import CustvalError
from pipelines.memory import measure
from pipelines.run import sync
from pipelines.storage import layout
from pipelines.storage.jsonfile import write_json

Stage = Callable[[RunContext], dict[str, Any]]


def _imported_when_run(module: str) -> Stage:
    """The `run` function of `module`, imported on the first call."""

    def run(ctx: RunContext) -> dict[str, Any]:
        stage: Stage = importlib.import_module(module).run
        return stage(ctx)

    run.__qualname__ = run.__name__ = f"{module}.run"
    return run


STAGES: dict[str, Stage] = {
    "extract": _imported_when_run("pipelines.extract.extract"),
    "validate": _imported_when_run("pipelines.validate.validate"),
    "stage": _imported_when_run("pipelines.transform.snapshot_orders"),
    "marts": _imported_when_run("pipelines.transform.marts"),
    "publish": _imported_when_run("pipelines.publish.publish"),
    "manifest": _imported_when_run("pipelines.publish.manifest"),
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
            return STAGES[name](ctx)
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
    from pipelines.engines import release_memory  # duckdb and pyarrow: not at DAG parse time

    release_memory()  # what the stage freed is not held beside the next stage's budget
    sync.after_stage(name, ctx)  # and what it wrote, copied up
    write_json(ctx.work_dir / "metrics" / f"{name}.json", m.as_dict())
    return result


def window(ctx: RunContext) -> list[date]:
    """The past snapshots an incremental run rebuilds when late orders arrive (newest first)."""
    if not ctx.source_spec.incremental:
        return []
    days = ctx.config.sources.reprocess_days
    return [ctx.snapshot_date - timedelta(days=k) for k in range(1, days + 1)]
