"""Manifest: the run's record, written last -- its presence means the snapshot is complete.

`DIR/runs/snapshot_date=D/manifest.json` holds the counts (and the reconciliation per source
file), what was published where, per-stage seconds and peak memory, the package versions
and a fingerprint of the inputs. A copy per run is kept under `history/`.
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines.context import RunContext
from pipelines.errors import ReconciliationError
from pipelines.history import batch_record
from pipelines.jsonfile import read_json, write_json

RUNS_ZONE = Path("runs")
PACKAGES = ("custval", "apache-airflow", "polars", "duckdb", "great-expectations", "pyarrow", "pandas", "numpy", "scipy")
STAGE_NAMES = ("extract", "validate", "stage", "marts", "publish", "manifest")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def stage_metrics(ctx: RunContext) -> dict[str, Any]:
    out = {}
    for stage in STAGE_NAMES:
        path = ctx.work_dir / "metrics" / f"{stage}.json"
        if path.exists():
            out[stage] = json.loads(path.read_text())
    return out


def manifest_path(warehouse: Path, snapshot: str) -> Path:
    return warehouse / RUNS_ZONE / f"snapshot_date={snapshot}" / "manifest.json"


def read_manifest(warehouse: Path, snapshot: date) -> dict[str, Any] | None:
    return read_json(manifest_path(warehouse, snapshot.isoformat()))


def batch_results(ctx: RunContext) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """The extract and validate results of the batch behind the snapshot, and whether this
    run ingested it (a rebuild of a past snapshot reads the stored record of its batch)."""
    if ctx.has_result("validate"):
        return ctx.load_result("extract"), ctx.load_result("validate"), True
    record = batch_record(ctx.warehouse, ctx.snapshot_date)
    if record is None:  # no batch arrived for this date: nothing to reconcile
        empty = {"rows_in": 0, "rows_accepted": 0, "rows_quarantined": 0, "rows_duplicate": 0}
        return (
            {"files": [], "raw_dir": None, "input_fingerprint": None},
            {"counts": empty, "per_file": [], "quarantine_reasons": {}, "warnings": [], "gx": None},
            False,
        )
    return record["extract"], record["validate"], False


def source_warnings(extract: dict[str, Any]) -> list[str]:
    nulls = (extract.get("watermark") or {}).get("rows_without_updated_at") or 0
    if not nulls:
        return []
    return [
        f"{nulls:,} rows of the source table have no updated_at: the full load read them once, but "
        "incremental extracts cannot see their changes"
    ]


def run(ctx: RunContext) -> dict[str, Any]:
    extract, validated, ingested = batch_results(ctx)
    staged = ctx.load_result("stage")
    marts = ctx.load_result("marts")
    published = ctx.load_result("publish")
    counts = validated["counts"]
    if counts["rows_in"] != counts["rows_accepted"] + counts["rows_quarantined"] + counts["rows_duplicate"]:
        raise ReconciliationError(f"run {ctx.run_id} does not reconcile: {counts}")
    per_file = {f["file"]: f for f in validated["per_file"]}
    files = [{**f, **per_file.get(f["path"], {})} for f in extract["files"]]
    manifest = {
        "run_id": ctx.run_id,
        "snapshot_date": ctx.snapshot_date.isoformat(),
        "status": "success",
        "started_at": ctx.started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "source": ctx.source_spec.display,
        "source_kind": ctx.source_spec.kind,
        "ingested_by_this_run": ingested,
        "history_until": staged.get("history_until"),
        "config": ctx.config_path,
        "counts": {
            **counts,
            "rows_in_snapshot": staged["rows_in_snapshot"],
            "rows_after_snapshot": staged["rows_after_snapshot"],
        },
        "reconciles": True,
        "files": files,
        "quarantine_reasons": validated["quarantine_reasons"],
        "warnings": validated["warnings"] + marts.get("warnings", []) + source_warnings(extract),
        "watermark": extract.get("watermark"),
        "validation": validated["gx"],
        "tables": {
            name: {"path": published["tables"][name], **marts["tables"][name]} for name in published["tables"]
        },
        "quarantine_path": published.get("quarantine"),
        "raw_path": extract["raw_dir"],
        "stages": stage_metrics(ctx),
        "model_seconds": marts.get("model_seconds", {}),
        "versions": package_versions(),
        "input_fingerprint": extract["input_fingerprint"],
    }
    path = manifest_path(ctx.warehouse, ctx.snapshot_date.isoformat())
    write_json(path.parent / "history" / f"{ctx.run_id}.json", manifest, durable=True)
    write_json(path, manifest, durable=True)
    return {"manifest_path": str(path), **manifest}
