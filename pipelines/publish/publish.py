"""Publish: assemble the run's version of the snapshot -- every table and the quarantine.

Nothing becomes visible here. The built tables are moved into a new, run-specific version of
the snapshot (`pipelines/storage/snapshots.py`); the manifest stage then writes the run's record
into the same version and makes the whole of it visible in one atomic step, so readers never
see some tables of this run and some of another. Safe to retry: a retried publish goes on with
the version it started.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipelines.context import RunContext
from pipelines.storage import files, layout, snapshots
from pipelines.storage.faults import checkpoint
from pipelines.storage.history import batch_quarantine
from pipelines.storage.jsonfile import read_json, write_json


def _version(ctx: RunContext) -> Path:
    state_path = ctx.work_dir / "published.json"
    state = read_json(state_path) or {}
    if state.get("version") and Path(state["version"]).is_dir():
        return Path(state["version"])
    version = snapshots.new_version(ctx.warehouse, ctx.snapshot_date, ctx.owner_run_id)
    write_json(state_path, {"version": str(version)})
    return version


def _quarantine_source(ctx: RunContext) -> Path | None:
    """The quarantine of the batch behind the snapshot: this run's, or the stored one's."""
    if ctx.source_spec.incremental:
        return batch_quarantine(ctx.warehouse, ctx.snapshot_date)
    if ctx.has_result("validate"):
        path = ctx.load_result("validate")["quarantine_path"]
        return Path(path) if path else None
    return None


def run(ctx: RunContext) -> dict[str, Any]:
    marts = ctx.load_result("marts")
    built = Path(marts["publish_dir"])
    version = _version(ctx)
    tables: dict[str, str] = {}
    for name in sorted(marts["tables"]):
        rel = layout.MARTS / name / layout.TABLE_FILE
        dest = version / rel
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            checkpoint("publish.table")
            files.move(built / name / layout.TABLE_FILE, dest)
        tables[name] = str(snapshots.visible_path(ctx.warehouse, ctx.snapshot_date, rel).parent)

    quarantine = None
    source = _quarantine_source(ctx)
    if source is not None and source.is_file():
        rel = layout.QUARANTINE / layout.TABLE_FILE
        staged = version / rel
        if not staged.exists():
            layout.restrict(version / rel.parts[0])  # source values, PII: restricted
            layout.restrict(ctx.warehouse / rel.parts[0])
            staged.parent.mkdir(parents=True, exist_ok=True)
            checkpoint("publish.quarantine")
            os.link(source, staged)  # validate wrote it conformed; the same bytes, no copy
        quarantine = str(snapshots.visible_path(ctx.warehouse, ctx.snapshot_date, rel).parent)
    return ctx.save_result(
        "publish", {"version": str(version), "tables": tables, "quarantine": quarantine}
    )
