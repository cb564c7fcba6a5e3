"""What the Airflow DAGs need from the package, kept out of the DAG files so they stay thin.

The snapshot rule: a run builds the snapshot of its data interval's day. With the DAG's
timetable (the UTC day, run at 02:00 the day after) the run covering day D starts at 02:00
UTC on D+1, so the snapshot is the day that has just ended -- for a run triggered by hand
too, whose data interval the timetable infers as the last whole day. An explicit `as_of`
param wins. A day that has not ended is refused unless `allow_partial_day` is set.

Tasks exchange only the run context and small summaries (paths and counts) through XCom.
The first task waits (as a rescheduling sensor, holding no worker slot) until the run can
begin: for an incremental source, until the day before is built. The extract task takes the
run's snapshot leases (run leases: judged by expiry, renewed by every task); the last task
releases them, and so does the DAG's failure callback, so a failed run never blocks the
next one. The lifecycle itself is `pipelines/run/pipeline.py`'s, the one the CLI runs.
"""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.context import RunContext, parse_date
from pipelines.errors import CustvalError
from pipelines.orchestration import connections
from pipelines.sources import KINDS
from pipelines.storage import locking

# Importing this module stays light (DAG files import it at parse time): the pipeline and
# its heavy libraries are imported inside the task functions.

log = logging.getLogger(__name__)
connections.register()  # `conn:<id>` sources and the HMAC key come from Airflow connections
MARTS = (
    "customer_rfm",
    "customer_clv",
    "cohort_retention",
    "kpi_summary",
    "segment_summary",
    "segment_transitions",
    "segment_transition_summary",
    "customer_journey",
    "journey_summary",
    "model_fit",
    "model_backtest",
)

# JSON schema of the DAG params (Airflow validates a trigger's params against it; the tasks
# check them again, since a run can also be made with params that skipped the form).
PARAMS_SCHEMA: dict[str, dict[str, Any]] = {
    "source": {
        "type": "string",
        "minLength": 1,
        "description": "Files (path or glob), a landing directory, postgresql://... or conn:<airflow connection id>",
    },
    "source_kind": {
        "type": "string",
        "enum": list(KINDS),
        "description": "How to read the source; auto tells by its shape",
    },
    "table": {
        "type": ["null", "string"],
        "pattern": r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$",
        "description": "PostgreSQL table or view (PostgreSQL sources only)",
    },
    "warehouse": {
        "type": "string",
        "pattern": "^(/|s3://)",
        "description": "Absolute path of the warehouse directory, or s3://bucket/prefix",
    },
    "as_of": {
        "type": ["null", "string"],
        "format": "date",
        "description": "Snapshot date; default: the day that has just ended",
    },
    "config": {
        "type": ["null", "string"],
        "description": "YAML file overriding the default configuration",
    },
    "allow_partial_day": {
        "type": "boolean",
        "description": "Build the snapshot of a day that has not ended yet (off: such a run fails at once)",
    },
    "shards": {
        "type": ["null", "integer"],
        "minimum": 1,
        "maximum": 4096,
        "description": "Shard the marts by customer into K shards, one mapped task each (default: the config's sources.shards, 1)",
    },
}

# The phases of a sharded marts build as the DAG runs them: one mapped task per shard for a
# "shard" phase, one task for a "global" one (`pipelines/transform/sharded.py` plans them from
# the SQL models; the plan task fails, naming both, if the models' plan ever differs).
SHARD_PHASES = ("shard", "global", "shard", "global")


def mart_assets(warehouse: str) -> list[Any]:
    """One Airflow Asset per published table (what downstream DAGs schedule on)."""
    from airflow.sdk import Asset

    base = warehouse.rstrip("/") if warehouse.startswith("s3://") else f"file://{warehouse}"
    return [Asset(name=f"custval_{t}", uri=f"{base}/marts/{t}") for t in MARTS]


def snapshot_for(
    as_of: str | None,
    logical_date: datetime | None,
    run_after: datetime | None,
    data_interval_start: datetime | None = None,
) -> date:
    """The run's snapshot: `as_of`, else its data interval's day, else the day before run_after.

    The data interval comes first: a run triggered from the UI carries the logical date
    "now", a day that has not ended, while the timetable gives it the last whole day.
    """
    if as_of:
        return parse_date(as_of, "as_of param")
    if data_interval_start is not None:
        return data_interval_start.date()
    if logical_date is not None:
        return logical_date.date()
    if run_after is None:
        raise ValueError(
            "no as_of param, data interval, logical date or run_after: cannot tell which snapshot to build"
        )
    return run_after.date() - timedelta(days=1)


def check_params(params: dict[str, Any]) -> None:
    """The params again, inside the task: clear errors before any work starts."""
    if not str(params.get("source") or "").strip():
        raise CustvalError("param source is empty")
    if params.get("source_kind", "auto") not in KINDS:
        raise CustvalError(f"param source_kind must be one of {', '.join(KINDS)}")
    warehouse = str(params.get("warehouse") or "")
    if not warehouse.startswith(("/", "s3://")):
        raise CustvalError(
            f"param warehouse must be an absolute path or s3://bucket/prefix, got {warehouse!r}"
        )
    table = params.get("table")
    if table and not re.match(PARAMS_SCHEMA["table"]["pattern"], table):
        raise CustvalError(f"param table {table!r} is not a plain (schema.)table name")
    config = params.get("config")
    if config and not Path(config).is_file():
        raise CustvalError(f"param config: no such file {config}")
    shards = params.get("shards")
    if shards is not None and (
        isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 4096
    ):
        raise CustvalError(f"param shards must be an integer from 1 to 4096, got {shards!r}")


def run_id_for(snapshot: date, dag_run_id: str) -> str:
    return f"{snapshot.isoformat()}_{re.sub(r'[^A-Za-z0-9]+', '-', dag_run_id).strip('-')}"[:120]


def new_run(
    params: dict[str, Any],
    logical_date: datetime | None,
    run_after: datetime | None,
    dag_run_id: str,
    data_interval_start: datetime | None = None,
) -> RunContext:
    """The run's context; a problem with the params or the date fails the task without retries."""
    try:
        return _new_run(params, logical_date, run_after, dag_run_id, data_interval_start)
    except CustvalError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from None


def _new_run(
    params: dict[str, Any],
    logical_date: datetime | None,
    run_after: datetime | None,
    dag_run_id: str,
    data_interval_start: datetime | None,
) -> RunContext:
    check_params(params)
    snapshot = snapshot_for(params.get("as_of"), logical_date, run_after, data_interval_start)
    return RunContext.create(
        source=params["source"],
        snapshot_date=snapshot,
        warehouse=params["warehouse"],
        config_path=params.get("config") or None,
        run_id=run_id_for(snapshot, dag_run_id),
        source_kind=params.get("source_kind") or "auto",
        table=params.get("table") or None,
        allow_partial_day=bool(params.get("allow_partial_day")),
        shards=params.get("shards"),
    )


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a stage result worth showing in XCom: scalars and small dicts only."""
    keep = {}
    for key, value in result.items():
        if (
            isinstance(value, (str, int, float, bool))
            or value is None
            or (key in ("counts", "tables") and isinstance(value, dict))
        ):
            keep[key] = value
    return keep


def ready_to_begin(
    params: dict[str, Any],
    logical_date: datetime | None,
    run_after: datetime | None,
    dag_run_id: str,
    data_interval_start: datetime | None = None,
) -> bool:
    """The sensor: True once the run can begin (the day before is built, no other run holds it)."""
    from pipelines.run.ordering import ready

    ctx = new_run(params, logical_date, run_after, dag_run_id, data_interval_start)
    try:
        reason = ready(ctx)
    finally:
        ctx.close_view()  # an s3:// warehouse: the run's tasks open their own
    if reason is not None:
        log.info("waiting: %s", reason)
    return reason is None


def start_run(
    params: dict[str, Any],
    logical_date: datetime | None,
    run_after: datetime | None,
    dag_run_id: str,
    data_interval_start: datetime | None = None,
) -> dict[str, Any]:
    """The extract task: begin the run (repair, order, leases), ingest late batches, extract."""
    from pipelines.run.lifecycle import begin
    from pipelines.run.rebuilds import ingest_late

    ctx = new_run(params, logical_date, run_after, dag_run_id, data_interval_start)
    leases = begin(ctx, holder="run")
    ingest_late(ctx, leases)
    return run_task("extract", {"context": ctx.to_dict()})


def asset_extra(run: dict[str, Any]) -> dict[str, str]:
    """What downstream DAGs learn from an asset event: which warehouse and snapshot."""
    return {
        "warehouse": run["context"].get("remote") or run["context"]["warehouse"],
        "snapshot_date": run["context"]["snapshot_date"],
    }


def run_task(stage: str, run: dict[str, Any]) -> dict[str, Any]:
    """Run one stage for the run described by the XCom dict `run`; returns the next XCom dict."""
    from pipelines.run import sync
    from pipelines.run.stages import run_stage

    ctx = RunContext.from_dict(run["context"])
    locking.renew_run(ctx.warehouse, ctx.owner_run_id)
    sync.pull_work(ctx)  # an s3:// warehouse: the work of earlier tasks, from whichever worker
    result = run_stage(stage, ctx)
    sync.push_work(ctx)
    if stage == "manifest" and result.get("status") == "degraded":
        from pipelines.orchestration.alerts import notify_degraded

        notify_degraded(result)
    return {"context": run["context"], stage: summary(result)}


def _sharded_part(run: dict[str, Any], index: int, shard: int | None) -> dict[str, Any]:
    from pipelines.run import sync
    from pipelines.transform.marts import run_sharded_part

    ctx = RunContext.from_dict(run["context"])
    locking.renew_run(ctx.warehouse, ctx.owner_run_id)
    sync.pull_work(ctx)
    result = run_sharded_part(ctx, index, shard)
    if "path" in result:  # the part's own directory only: shard tasks run at once, and
        sync.push_work_part(ctx, Path(result["path"]))  # must not copy up each other's files
    else:
        sync.push_work(ctx)
    return result


def plan_shards(run: dict[str, Any]) -> list[int]:
    """The shard ids the phase tasks map over, after splitting the staged orders by customer.

    Unsharded (K = 1) the list is empty: Airflow skips the mapped phase tasks and the global
    phases after them without starting a process, and the marts task builds the snapshot as
    it always has.
    """
    planned = _sharded_part(run, -1, None)
    kinds = tuple(planned.get("phases", SHARD_PHASES))
    if kinds != SHARD_PHASES:
        raise CustvalError(
            f"the SQL models plan the sharded phases {kinds}, the DAG runs {SHARD_PHASES}: "
            "update SHARD_PHASES in pipelines/orchestration/tasks.py"
        )
    return list(planned.get("shards", []))


def run_shard_part(run: dict[str, Any], phase: int, shard: int) -> dict[str, Any]:
    """One shard's part of a shard phase (a mapped task); paths and counts only."""
    return _sharded_part(run, phase, shard)


def run_global_part(run: dict[str, Any], phase: int) -> dict[str, Any]:
    """A global phase, once: merges the shards' tables (ranks, cuts, fits, totals)."""
    return _sharded_part(run, phase, None)


def finish_run(run: dict[str, Any]) -> dict[str, Any]:
    """The last task: rebuild what the run's batches changed, release the leases, clean up."""
    from pipelines.run import sync
    from pipelines.run.lifecycle import Leases
    from pipelines.run.rebuilds import finish

    ctx = RunContext.from_dict(run["context"])
    leases = Leases(ctx, "run", held=locking.leases_of(ctx.warehouse, ctx.owner_run_id))
    try:
        sync.pull_work(ctx)
        rebuilt = finish(ctx, leases)
    finally:
        leases.release()
    sync.drop_work(ctx)
    ctx.cleanup()
    return {"context": run["context"], "rebuilt_snapshots": rebuilt}


# ------------------------------------------------------------------------------------------
# Callbacks


def _fields(context: dict[str, Any]) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    params = context.get("params") or {}
    fields: dict[str, Any] = {
        "dag_id": getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None),
        "error": context.get("exception") or context.get("reason"),
    }
    with contextlib.suppress(Exception):  # a callback reports what it can
        fields["snapshot_date"] = snapshot_for(
            params.get("as_of"),
            getattr(dag_run, "logical_date", None),
            getattr(dag_run, "run_after", None),
            getattr(dag_run, "data_interval_start", None),
        ).isoformat()
    if ti is not None and getattr(ti, "task_id", None):
        fields["task_id"] = ti.task_id
        fields["try_number"] = getattr(ti, "try_number", None)
        fields["max_tries"] = getattr(ti, "max_tries", None)
        fields["log_url"] = getattr(ti, "log_url", None)
    return fields


def on_task_failure(context: dict[str, Any]) -> None:
    from pipelines.orchestration.alerts import notify_failure

    notify_failure(_fields(context))


def on_run_failure(context: dict[str, Any]) -> None:
    """A failed run: release its leases so the next run is not blocked, clean up, and alert."""
    from pipelines.context import check_warehouse, object_warehouse
    from pipelines.orchestration.alerts import notify_failure
    from pipelines.run import sync
    from pipelines.run.lifecycle import discard_unpublished
    from pipelines.run.ordering import record_failure
    from pipelines.storage.object_store import is_object_url

    fields = _fields(context)
    params = context.get("params") or {}
    try:
        snapshot = date.fromisoformat(fields["snapshot_date"])
        run_id = run_id_for(snapshot, fields["run_id"])
        remote = params["warehouse"] if is_object_url(params["warehouse"]) else None
        warehouse = check_warehouse(params["warehouse"], view=run_id)
        ctx = RunContext(
            run_id=run_id,
            snapshot_date=snapshot,
            warehouse=warehouse,
            source=params["source"],
            config_path=params.get("config"),
            started_at=datetime.now(),
            source_kind=params.get("source_kind") or "auto",
            table=params.get("table"),
            remote=object_warehouse(remote) if remote else None,
        )
        sync.pull_work(ctx)  # the version publish began, if it did, is named there
        discard_unpublished(ctx)
        record_failure(ctx, RuntimeError(str(fields.get("error") or "the DAG run failed")))
        locking.release_run(warehouse, run_id)
        sync.drop_work(ctx)
        ctx.cleanup()
    except Exception as exc:  # noqa: BLE001 - the alert matters more than the clean-up
        log.warning("could not release the run's leases: %s", exc)
    notify_failure({**fields, "task_id": None})
