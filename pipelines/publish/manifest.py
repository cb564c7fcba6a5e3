"""Manifest: the run's record, written into its version of the snapshot -- and the commit.

`DIR/runs/snapshot_date=D/manifest.json` holds the counts (and the reconciliation per source
file, records and physical lines), what was published where, the files refused and why, per-stage seconds and
peak memory, the package versions, a fingerprint of the inputs, the batches the snapshot was
built from, gaps and warnings, and the published tables' checks against their contracts
(`mart_validation`: rules checked and passed per table). The manifest stage writes it into the version the publish
stage assembled and then makes that version visible in one atomic step
(`pipelines/storage/snapshots.py`): the manifest readers see always describes the files they
see. A copy per run is kept under `runs/snapshot_date=D/history/`.

On an object-store warehouse the manifest names the published files by their `s3://` URLs,
and the commit is the object store's (`pipelines/storage/object_snapshots.py`).
"""

from __future__ import annotations

import json
import logging
import platform
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines.context import RunContext
from pipelines.errors import ReconciliationError
from pipelines.extract.extract import nothing_landed
from pipelines.publish.catalog import refresh_catalog
from pipelines.report.publish import publish_report
from pipelines.stage_results import ExtractResult, ValidateResult
from pipelines.storage import layout, local_view, locking, snapshots
from pipelines.storage.history import batch_record, ingested_dates
from pipelines.storage.jsonfile import read_json, write_json
from pipelines.validate.accepted import nothing_arrived

PACKAGES = (
    "custval",
    "apache-airflow",
    "polars",
    "duckdb",
    "great-expectations",
    "pyarrow",
    "pandas",
    "numpy",
    "scipy",
)
STAGE_NAMES = ("extract", "validate", "stage", "marts", "publish", "manifest")


log = logging.getLogger(__name__)


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


def read_manifest(warehouse: Path, snapshot: date) -> dict[str, Any] | None:
    return read_json(layout.manifest_path(warehouse, snapshot))


def nothing_extracted(ctx: RunContext) -> ExtractResult:
    return nothing_landed(ctx.source_spec)


def batch_results(ctx: RunContext) -> tuple[ExtractResult, ValidateResult, bool]:
    """The extract and validate results of the batch behind the snapshot, and whether this
    run ingested it (a rebuild of a past snapshot reads the stored record of its batch)."""
    if ctx.has_result("validate") and ctx.load_result("validate").get("arrived", True):
        return ctx.load_result("extract"), ctx.load_result("validate"), True
    record = batch_record(ctx.warehouse, ctx.snapshot_date)
    if record is None:  # no batch arrived for this date (yet): nothing to reconcile
        return nothing_extracted(ctx), nothing_arrived(), False
    return record["extract"], record["validate"], False


def source_warnings(extract: ExtractResult) -> list[str]:
    out = []
    nulls = (extract.get("watermark") or {}).get("rows_without_updated_at") or 0
    if nulls:
        out.append(
            f"{nulls:,} rows of the source table have no updated_at: the full load read them once, but "
            "incremental extracts cannot see their changes"
        )
    for refused in extract.get("refused_files") or []:
        out.append(f"file not read: {refused['path']} ({refused['reason']})")
    return out


def gaps(ctx: RunContext) -> list[str]:
    """Days between the first ingested batch and this snapshot with no batch (landing only)."""
    if ctx.source_spec.kind != "landing":
        return []
    dates = ingested_dates(ctx.warehouse)
    if not dates:
        return []
    have = set(dates)
    day, out = dates[0], []
    while day <= ctx.snapshot_date:
        if day not in have:
            out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def build(ctx: RunContext) -> dict[str, Any]:
    extract, validated, ingested = batch_results(ctx)
    staged = ctx.load_result("stage")
    marts = ctx.load_result("marts")
    published = ctx.load_result("publish")
    counts = validated["counts"]
    if (
        counts["rows_in"]
        != counts["rows_accepted"] + counts["rows_quarantined"] + counts["rows_duplicate"]
    ):
        raise ReconciliationError(f"run {ctx.run_id} does not reconcile: {counts}")
    per_file = {f["file"]: f for f in validated["per_file"]}
    files = [{**f, **per_file.get(f["path"], {})} for f in extract["files"]]
    missing = gaps(ctx)
    warnings = validated["warnings"] + marts.get("warnings", []) + source_warnings(extract)
    if missing:
        warnings.append(
            f"no batch has arrived for {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}: "
            "this snapshot will be rebuilt when it lands"
        )
    return {
        "run_id": ctx.run_id,
        "snapshot_date": ctx.snapshot_date.isoformat(),
        # degraded: every table published, but a model could not be fitted (model_fit says why)
        "status": "degraded" if marts.get("model_failures") else "success",
        "model_failures": marts.get("model_failures", []),
        "started_at": ctx.started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "source": ctx.source_spec.display,
        "source_kind": ctx.source_spec.kind,
        "ingested_by_this_run": ingested,
        "history_until": staged.get("history_until"),
        "history_batches": staged.get("history_batches"),
        "gaps": missing,
        "quiet_day": bool(validated.get("quiet_day")),
        "config": ctx.config_path,
        "counts": {
            **counts,
            "rows_in_snapshot": staged["rows_in_snapshot"],
            "rows_after_snapshot": staged["rows_after_snapshot"],
        },
        "lines": validated.get("lines"),
        "reconciles": True,
        "files": files,
        "refused_files": extract.get("refused_files") or [],
        "quarantine_reasons": validated["quarantine_reasons"],
        "warnings": warnings,
        "watermark": extract.get("watermark"),
        "validation": validated["gx"],
        "mart_validation": marts.get("validation"),
        "tables": {
            name: {"path": published["tables"][name], **marts["tables"][name]}
            for name in published["tables"]
        },
        "quarantine_path": published.get("quarantine"),
        "raw_path": extract["raw_dir"],
        "stages": stage_metrics(ctx),
        "model_seconds": marts.get("model_seconds", {}),
        **(
            {"model_peak_rss_mb": marts["model_peak_rss_mb"]}
            if marts.get("model_peak_rss_mb")
            else {}
        ),
        **({"sharding": marts["sharding"]} if marts.get("sharding") else {}),
        "versions": package_versions(),
        "resources": ctx.config.resources.model_dump(),  # the budget the stages ran under
        "input_fingerprint": extract["input_fingerprint"],
    }


def run(ctx: RunContext) -> dict[str, Any]:
    """Write the manifest into the run's version, then make the version visible (the commit)."""
    version = Path(ctx.load_result("publish")["version"])
    manifest = {**build(ctx), "version": version.name}  # where a reader pins this snapshot
    manifest |= publish_report(ctx, version, manifest)  # the page, in the version it shows
    manifest = local_view.published_form(ctx.warehouse, manifest)  # s3:// URLs on a store
    write_json(version / snapshots.MANIFEST, manifest, durable=True)

    snapshots.commit(
        ctx.warehouse,
        ctx.snapshot_date,
        version,
        fence=lambda: locking.fenced(ctx.warehouse, ctx.snapshot_date, ctx.owner_run_id),
    )
    path = layout.manifest_path(ctx.warehouse, ctx.snapshot_date)
    history = path.parent / layout.HISTORY / f"{ctx.run_id}.json"
    write_json(history, manifest, durable=True)
    failure = layout.failure_path(ctx.warehouse, ctx.snapshot_date)
    failure.unlink(missing_ok=True)
    for written in (history, failure):  # an object-store warehouse: there too
        local_view.push_file(ctx.warehouse, written.relative_to(ctx.warehouse))
    run_fields = {"snapshot_date": ctx.snapshot_date.isoformat(), "run_id": ctx.run_id}
    for warning in manifest["warnings"]:  # into Airflow's task log and the CLI's stderr
        log.warning("%s", warning, extra=run_fields)
    catalog = refresh_catalog(ctx.warehouse)  # after the commit: BI sees the new snapshot
    return local_view.published_form(
        ctx.warehouse, {"manifest_path": str(path), **manifest, **catalog}
    )
