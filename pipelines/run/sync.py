"""Which zones each stage reads and writes, for a run on an object-store warehouse.

A run on `s3://…` works in a local view of the warehouse (`pipelines/storage/local_view.py`).
Before a stage the zones it reads are brought up to date from the store; after it, the
partitions it wrote are copied up. For a local warehouse every function here does nothing.

    stage      reads (pulled before)                           writes (pushed after)
    begin      runs/ (manifests, last failures)                -
    extract    accepted/, raw/ partition of D                  raw/ partition of D
    validate   runs/, docs/validation/                         raw/ and accepted/ partitions of D,
                                                               rejected/<run>/, docs/validation/
    stage      accepted/                                       -
    marts      runs/, marts/model_fit/, marts/model_backtest/  -
    publish    accepted/                                       - (the version stays local)
    manifest   runs/, accepted/, marts/kpi_summary/            the commit itself
                                                               (`object_snapshots.py`), history

A batch's record (`_batch.json`, `_ingest.json`) is written last and removed first when it
changes, so a partition never counts as ingested while its files are being replaced.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path, PurePosixPath

from pipelines.context import RunContext
from pipelines.errors import CustvalError
from pipelines.storage import layout, local_view
from pipelines.storage.jsonfile import read_json, write_json

log = logging.getLogger(__name__)

RECORDS = ("_batch.json", "_ingest.json")  # what makes a raw or accepted partition count
MODEL_TABLES = ("model_fit", "model_backtest")


def _rel(ctx: RunContext, path: object) -> PurePosixPath:
    return PurePosixPath(Path(str(path)).relative_to(ctx.warehouse).as_posix())


def _runs(ctx: RunContext) -> None:
    local_view.pull_manifests(ctx.warehouse)


def _accepted(ctx: RunContext) -> None:
    local_view.pull(ctx.warehouse, layout.ACCEPTED.as_posix())


def _tables(ctx: RunContext, *tables: str) -> None:
    for table in tables:
        local_view.pull(ctx.warehouse, layout.MARTS / table)


def _raw_partition(ctx: RunContext) -> PurePosixPath:
    from pipelines.extract.extract import raw_partition

    return _rel(ctx, raw_partition(ctx))


def remote(ctx: RunContext) -> bool:
    return local_view.remote_of(ctx.warehouse) is not None


def refresh(ctx: RunContext, *, accepted: bool = False) -> None:
    """What a run's beginning reads: the published manifests and last failures (and the
    accepted batches, to tell which arrivals came late)."""
    if remote(ctx):
        _runs(ctx)
        if accepted:
            _accepted(ctx)


def before_stage(name: str, ctx: RunContext) -> None:
    if not remote(ctx):
        return
    if name == "extract":
        _accepted(ctx)
        if ctx.source_spec.incremental:  # a batch landed for D is reused by a rerun
            local_view.pull(ctx.warehouse, _raw_partition(ctx))
    elif name == "validate":
        _runs(ctx)
        local_view.pull(ctx.warehouse, layout.DOCS.as_posix())
    elif name in ("stage", "publish"):
        _accepted(ctx)
    elif name == "marts":
        _runs(ctx)
        _tables(ctx, *MODEL_TABLES)
    elif name == "manifest":
        _runs(ctx)
        _accepted(ctx)
        _tables(ctx, "kpi_summary")


def after_stage(name: str, ctx: RunContext) -> None:
    """Copy up what the stage wrote (also after it failed: a rejected batch is kept)."""
    if not remote(ctx):
        return
    if name == "extract":  # a batch landed earlier, reused: its record names the store's paths
        _work_record(ctx, "extract")
    if name in ("extract", "validate"):
        raw = _raw_partition(ctx)
        local_view.publish_records(ctx.warehouse, ctx.warehouse / raw, RECORDS)
        local_view.push(ctx.warehouse, raw, last=RECORDS)
    if name == "validate":
        if ctx.source_spec.incremental:
            accepted = layout.accepted_partition(PurePosixPath(), ctx.snapshot_date)
            if (ctx.warehouse / accepted).is_dir():
                local_view.publish_records(ctx.warehouse, ctx.warehouse / accepted, RECORDS)
                local_view.push(ctx.warehouse, accepted, last=RECORDS)
        rejected = PurePosixPath(layout.REJECTED.as_posix()) / ctx.run_id
        if (ctx.warehouse / rejected).is_dir():
            local_view.push(ctx.warehouse, rejected)
        local_view.push(ctx.warehouse, layout.DOCS.as_posix(), delete=False)


def _work_record(ctx: RunContext, stage: str) -> None:
    """A stage result read from a stored record: its paths as this run's view's."""
    path = ctx.work_dir / f"{stage}.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    local = local_view.local_form(ctx.warehouse, result)
    if local != result:
        write_json(path, local)


def push_file(ctx: RunContext, path: object) -> None:
    """One file the run wrote or removed in a persistent zone (a failure note, a history)."""
    if remote(ctx):
        local_view.push_file(ctx.warehouse, _rel(ctx, path))


def after_stage_failed(name: str, ctx: RunContext) -> None:
    """`after_stage` for a stage that raised: best effort, the stage's error is what counts."""
    try:
        after_stage(name, ctx)
    except Exception as exc:  # noqa: BLE001 - reported, never in place of the stage's error
        log.warning("could not copy what stage %s left to %s: %s", name, ctx.location, exc)


def as_published(ctx: RunContext, exc: CustvalError) -> CustvalError:
    """The error with the view's paths named as the store's URLs (as the user knows them)."""
    if not remote(ctx):
        return exc
    text = local_view.text_form(ctx.warehouse, str(exc))
    if text == str(exc):
        return exc
    try:
        return type(exc)(text)
    except TypeError:  # an error class with another signature: keep it as it is
        return exc


def pull_published(root: Path, snapshot: date) -> None:
    """A published snapshot as `custval report` reads it: the manifests, the version the
    snapshot's manifest pins, and the KPIs of earlier snapshots (an object-store warehouse)."""
    if local_view.remote_of(root) is None:
        return
    local_view.pull_manifests(root)
    manifest = read_json(layout.manifest_path(root, snapshot)) or {}
    version = manifest.get("version")
    if isinstance(version, str) and version:
        pinned = layout.snapshot_root(PurePosixPath(), snapshot) / version
        for zone in (layout.MARTS.as_posix(), layout.RUNS.as_posix()):  # not the quarantine
            local_view.pull(root, pinned / zone)
    local_view.pull(root, layout.MARTS / "kpi_summary")


# ------------------------------------------------------------------------------------------
# The work directory between Airflow tasks


def _work(ctx: RunContext) -> PurePosixPath:
    return PurePosixPath(layout.WORK.as_posix()) / ctx.owner_run_id


def pull_work(ctx: RunContext) -> None:
    """Before an Airflow task: the run's work directory as earlier tasks left it.

    Each task of a DAG run may run on another worker; on an object-store warehouse the work
    directory travels through the store's restricted `_work/<run_id>/` between tasks (the
    workers' `CUSTVAL_SCRATCH` must be the same path: stage results name files by path).
    """
    if remote(ctx):
        local_view.pull(ctx.warehouse, _work(ctx))


def push_work(ctx: RunContext) -> None:
    """After an Airflow task: the work directory, for the next task wherever it runs."""
    if remote(ctx):
        local_view.push(ctx.warehouse, _work(ctx))


def push_work_part(ctx: RunContext, directory: Path) -> None:
    """After one of several tasks running at once (a sharded build's mapped shard tasks): only
    the directory it wrote, leaving what the others copied up alone."""
    if remote(ctx):
        local_view.push(ctx.warehouse, _rel(ctx, directory), delete=False)


def drop_work(ctx: RunContext) -> None:
    """At the end of an Airflow run: its work directory in the store goes."""
    store = local_view.remote_of(ctx.warehouse)
    if store is not None:
        store.remove_tree(_work(ctx))
