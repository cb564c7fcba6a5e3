"""What the Airflow DAG needs from the package, kept out of the DAG file so it stays thin.

The snapshot rule: a run for logical date D builds snapshot D. With the DAG's data-interval
timetable (daily at 02:00 UTC) the run covering day D starts at 02:00 UTC on D+1, so the
snapshot is the day that has just ended. An explicit `as_of` param wins; a manual run with
no logical date builds the day before it was triggered.

Tasks exchange only the run context and small summaries (paths and counts) through XCom.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta
from typing import Any

from pipelines.context import RunContext, parse_date
from pipelines.pipeline import run_stage

HMAC_CONNECTION = "custval_hmac"


def snapshot_for(as_of: str | None, logical_date: datetime | None, run_after: datetime | None) -> date:
    if as_of:
        return parse_date(as_of, "as_of param")
    if logical_date is not None:
        return logical_date.date()
    if run_after is None:
        raise ValueError("no as_of param, logical date or run_after: cannot tell which snapshot to build")
    return run_after.date() - timedelta(days=1)


def new_run(params: dict[str, Any], logical_date: datetime | None, run_after: datetime | None, dag_run_id: str) -> RunContext:
    snapshot = snapshot_for(params.get("as_of"), logical_date, run_after)
    run_id = f"{snapshot.isoformat()}_{re.sub(r'[^A-Za-z0-9]+', '-', dag_run_id).strip('-')}"[:120]
    return RunContext.create(
        source=params["source"],
        snapshot_date=snapshot,
        warehouse=params["warehouse"],
        config_path=params.get("config") or None,
        run_id=run_id,
    )


def summary(stage: str, result: dict[str, Any]) -> dict[str, Any]:
    """The part of a stage result worth showing in XCom: scalars and small dicts only."""
    keep = {}
    for key, value in result.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            keep[key] = value
        elif key in ("counts", "tables") and isinstance(value, dict):
            keep[key] = value
    return keep


def run_task(stage: str, run: dict[str, Any]) -> dict[str, Any]:
    """Run one stage for the run described by the XCom dict `run`; returns the next XCom dict."""
    ctx = RunContext.from_dict(run["context"])
    if stage == "stage":
        load_hmac_key_from_connection()
    result = run_stage(stage, ctx)
    if stage == "manifest":
        ctx.cleanup()
    return {"context": run["context"], stage: summary(stage, result)}


def load_hmac_key_from_connection(env_var: str = "CUSTVAL_HMAC_KEY") -> None:
    """Fill the HMAC key env var from the Airflow connection `custval_hmac` (its password)."""
    if os.environ.get(env_var):
        return
    try:
        from airflow.sdk import Connection

        conn = Connection.get(HMAC_CONNECTION)
    except Exception:  # noqa: BLE001 - no such connection: the stage reports the missing key
        return
    if conn is not None and conn.password:
        os.environ[env_var] = conn.password
