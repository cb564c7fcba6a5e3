"""Extract: read the run's batch from its source and land it unchanged as Parquet.

The landed batch holds every record exactly as read -- text for CSV/JSON Lines, the written
types for Parquet and PostgreSQL -- plus lineage columns, so any later question ("what did
line 4711 of yesterday's file say?") is answered from the warehouse. Every file of a source
directory is either read or refused with a reason; both lists go into the manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipelines.config import Config
from pipelines.context import RunContext
from pipelines.contracts import Contract, load_contract
from pipelines.errors import BatchRejected, SourceError
from pipelines.extract.discovery import Discovered, discover, refused_as_dicts, sha256_file
from pipelines.extract.formats import file_format
from pipelines.extract.parquet_landing import IMPLIED, ParquetShape, landable, link_or_copy
from pipelines.extract.readers import RawFile, ReadOptions, raw_from_arrow, read_raw, with_lineage
from pipelines.sources import Source, arrival_dirs
from pipelines.stage_results import ExtractResult
from pipelines.storage import layout
from pipelines.storage.atomic import swap_in
from pipelines.storage.files import fresh_dir
from pipelines.storage.history import batch_record, ingested_dates

INGEST_RECORD = "_ingest.json"


def fingerprint(files: list[dict[str, Any]]) -> str:
    """One hash over every input file's name, size and content hash."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f["path"]):
        digest.update(f"{f['path']}\0{f['size']}\0{f['sha256']}\n".encode())
    return digest.hexdigest()


def read_options(config: Config) -> ReadOptions:
    csv = config.sources.csv
    return ReadOptions(
        delimiter=csv.delimiter,
        max_record_lines=csv.max_record_lines,
        max_record_chars=csv.max_record_chars,
    )


def discover_files(source: str, config: Config, *, allow_empty: bool = False) -> Discovered:
    """The files to read, with the policy for files custval cannot read applied."""
    found = discover(source, allow_empty=allow_empty)
    unsupported = [r for r in found.refused if r.code != "HIDDEN"]
    if unsupported and config.sources.unsupported_files == "fail":
        listed = "; ".join(f"{r.path} ({r.reason})" for r in unsupported[:3])
        more = f" and {len(unsupported) - 3} more" if len(unsupported) > 3 else ""
        raise SourceError(
            f"{source}: {len(unsupported)} file(s) cannot be read: {listed}{more}; remove or convert them, "
            "or set sources.unsupported_files: skip to list them in the manifest and go on"
        )
    return found


def _land(
    ctx: RunContext,
    raws: Iterable[RawFile],
    contract: Contract,
    facts_extra: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Write each raw file to the run's staging area as it is read; returns per-file facts.

    The staging area is made fresh here, also for Parquet files landed as they are after.
    """
    staging = ctx.work_dir / "raw"
    fresh_dir(staging)
    facts = []
    for i, (raw, extra) in enumerate(zip(raws, facts_extra, strict=True)):
        missing = [c for c in contract.required_columns if c not in raw.columns]
        if missing:
            raise BatchRejected(
                f"{extra.get('path', raw.path)}: required column(s) {', '.join(missing)} missing "
                f"(found: {', '.join(raw.columns) or 'none'}); rule orders.required_columns, nothing published"
            )
        landed = staging / f"part-{i:05d}.parquet"
        raw.frame.write_parquet(landed, compression="zstd")
        facts.append(
            {
                "path": str(raw.path),
                "format": raw.format,
                "rows": raw.frame.height,
                "lines": raw.lines,
                "header_lines": raw.header_lines,
                "columns": raw.columns,
                "ignored_columns": raw.ignored_columns,
                "blank_lines": raw.blank_lines,
                "unreadable_records": int(raw.frame["_read_error"].is_not_null().sum()),
                "read_record_by_record": not raw.fast_path,
                "compression": raw.compression,
                "landed": landed.name,
                **extra,
            }
        )
    return facts


def _file_facts(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def land_files(ctx: RunContext, files: list[Path], contract: Contract) -> list[dict[str, Any]]:
    """Land every file: Parquet files as they are (`parquet_landing`), text files as read."""
    options = read_options(ctx.config)
    shapes = {p: landable(p, contract.column_names) for p in files if file_format(p) == "parquet"}
    as_is = {p for p, shape in shapes.items() if shape is not None}
    raws = (
        read_raw(path, contract.column_names, options) for path in files if path not in as_is
    )  # one file in memory at a time
    facts = _land(ctx, raws, contract, [_file_facts(p) for p in files if p not in as_is])
    for i, path in enumerate(p for p in files if p in as_is):
        shape = shapes[path]
        assert shape is not None
        facts.append(_land_as_is(ctx, path, shape, contract, i))
    by_path = {f["path"]: f for f in facts}
    return [by_path[str(p)] for p in files]  # in the order the files are read


def _land_as_is(
    ctx: RunContext, path: Path, shape: ParquetShape, contract: Contract, i: int
) -> dict[str, Any]:
    missing = [c for c in contract.required_columns if c not in shape.columns]
    if missing:
        raise BatchRejected(
            f"{path}: required column(s) {', '.join(missing)} missing "
            f"(found: {', '.join(shape.columns) or 'none'}); rule orders.required_columns, nothing published"
        )
    landed = ctx.work_dir / "raw" / f"part-as-is-{i:05d}.parquet"
    how = link_or_copy(path, landed)
    return {
        "path": str(path),
        "format": "parquet",
        "rows": shape.rows,
        "lines": shape.rows,
        "header_lines": 0,
        "columns": shape.columns,
        "ignored_columns": shape.ignored,
        "blank_lines": 0,
        "unreadable_records": 0,
        "read_record_by_record": False,
        "compression": None,
        "landed": landed.name,
        "landed_as": how,  # the source file itself: a hard link, or a copy
        "lineage": IMPLIED,  # row k is line k; not stored in the file
        **_file_facts(path),
    }


def _postgres_batch(
    ctx: RunContext, contract: Contract, source: Source
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from pipelines.extract import postgres

    config = ctx.config.sources.postgres
    low = latest_watermark(ctx.warehouse, before=ctx.snapshot_date)
    got = postgres.extract(
        source.location,
        source.table or "",
        contract.column_names,
        datetime.fromisoformat(low) if low else None,
        lag_seconds=config.lag_seconds,
        retries=config.retries,
        backoff_seconds=config.backoff_seconds,
    )
    raw = with_lineage(
        raw_from_arrow(got.table, Path(source.display), "postgres", []), source.display
    )
    digest = hashlib.sha256(raw.frame.drop("_source_file").write_ipc(None).getvalue()).hexdigest()
    facts = _land(
        ctx,
        [raw],
        contract,
        [{"path": source.display, "size": raw.frame.estimated_size(), "sha256": digest}],
    )
    watermark = {
        "low": got.low.isoformat() if got.low else None,
        "high": got.high.isoformat(),
        "rows_without_updated_at": got.null_watermark_rows,
    }
    return facts, watermark


def latest_watermark(warehouse: Path, before: date) -> str | None:
    """The high watermark of the newest *accepted* batch before `before` (None: full load).

    Only batches that passed validation count: a rejected batch's rows are read again.
    """
    highs = []
    for day in ingested_dates(warehouse):
        if day < before:
            record = batch_record(warehouse, day) or {}
            high = (record.get("extract", {}).get("watermark") or {}).get("high")
            if high:
                highs.append(high)
    return max(highs) if highs else None


def raw_partition(ctx: RunContext) -> Path:
    key = "ingest_date" if ctx.source_spec.incremental else "snapshot_date"
    return ctx.warehouse / layout.RAW / f"{key}={ctx.snapshot_date.isoformat()}"


def run(ctx: RunContext) -> dict[str, Any]:
    """Extract stage: the source's batch for this run -> the raw zone, unchanged, as Parquet.

    A `files` source lands under `raw/orders/snapshot_date=D/` (replaced by a rerun). An
    incremental source lands under `raw/orders/ingest_date=D/`: a batch that was accepted for
    D is reused as it is by a rerun (the raw zone is the record of what arrived), unless the
    run asks to re-ingest it; a batch that was not accepted (its run failed or was rejected)
    is read from the source again.
    """
    contract = load_contract("orders")
    source = ctx.source_spec
    target = raw_partition(ctx)
    layout.restrict(ctx.warehouse / layout.RAW.parts[0])  # source rows as received, PII included
    if not source.incremental:
        every_file = discover_files(ctx.source, ctx.config)
        facts = land_files(ctx, every_file.files, contract)
        swap_in(ctx.work_dir / "raw", target)
        return ctx.save_result("extract", _result(target, facts, source, every_file))

    record = target / INGEST_RECORD
    if (
        record.is_file()
        and not ctx.reingest
        and batch_record(ctx.warehouse, ctx.snapshot_date) is not None
    ):
        return ctx.save_result("extract", {**json.loads(record.read_text()), "reused": True})
    watermark = None
    found: Discovered | None = None
    if source.kind == "landing":
        arrivals = arrival_dirs(Path(source.location).expanduser()).get(
            ctx.snapshot_date.isoformat()
        )
        if arrivals is None:
            return ctx.save_result("extract", _missing_arrivals(ctx, source))
        found = discover_files(str(arrivals), ctx.config, allow_empty=True)
        facts = land_files(ctx, found.files, contract)
    else:
        facts, watermark = _postgres_batch(ctx, contract, source)
    result = _result(target, facts, source, found)
    if watermark is not None:
        result["watermark"] = watermark
    (ctx.work_dir / "raw" / INGEST_RECORD).write_text(json.dumps(result, indent=2))
    swap_in(ctx.work_dir / "raw", target)
    return ctx.save_result("extract", result)


def _missing_arrivals(ctx: RunContext, source: Source) -> dict[str, Any]:
    """No date=D folder yet: a gap, built from the accepted history (or an error)."""
    message = f"{source.location}: no arrivals for {ctx.snapshot_date} (expected a folder date={ctx.snapshot_date.isoformat()})"
    if ctx.config.sources.missing_arrivals == "fail":
        raise SourceError(message + "; sources.missing_arrivals is fail")
    if not ingested_dates(ctx.warehouse):
        raise SourceError(message + " and no accepted history to build the snapshot from")
    return dict(nothing_landed(source))


def nothing_landed(source: Source) -> ExtractResult:
    """The extract record of a run that landed no batch (a gap, or a rebuild of history)."""
    return {
        "raw_dir": None,
        "source": source.display,
        "source_kind": source.kind,
        "arrived": False,
        "files": [],
        "refused_files": [],
        "rows_in": 0,
        "input_fingerprint": None,
        "reused": False,
    }


def _result(
    target: Path, facts: list[dict[str, Any]], source: Source, found: Discovered | None
) -> dict[str, Any]:
    return {
        "raw_dir": str(target),
        "source": source.display,
        "source_kind": source.kind,
        "arrived": True,
        "files": facts,
        "refused_files": refused_as_dicts(found.refused) if found else [],
        "rows_in": sum(f["rows"] for f in facts),
        "input_fingerprint": fingerprint(facts),
        "reused": False,
    }
