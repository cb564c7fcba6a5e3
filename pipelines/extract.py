"""Extract: read the run's batch from its source and land it unchanged as Parquet.

The landed batch holds every record exactly as read -- text for CSV/JSON Lines, the written
types for Parquet and PostgreSQL -- plus lineage columns, so any later question ("what did
line 4711 of yesterday's file say?") is answered from the warehouse.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable
import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipelines.config import load_config
from pipelines.context import RunContext
from pipelines.contracts import Contract, load_contract
from pipelines.errors import BatchRejected, SourceError
from pipelines.publish import swap_in
from pipelines.readers import SUFFIXES, RawFile, raw_from_arrow, read_raw, with_lineage
from pipelines.sources import Source, arrival_dirs

RAW_ZONE = Path("raw") / "orders"
INGEST_RECORD = "_ingest.json"


def discover(source: str) -> list[Path]:
    """The files of a source: a file, a directory (recursively) or a glob pattern."""
    path = Path(source).expanduser()
    if path.is_file():
        return [path.resolve()]
    if path.is_dir():
        files = sorted(p.resolve() for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES and not _hidden(p, path))
        if not files:
            raise SourceError(f"{source}: no .csv, .parquet or .jsonl files in this directory")
        return files
    if glob.has_magic(source):
        files = sorted(Path(p).resolve() for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise SourceError(f"{source}: the pattern matches no files")
        return files
    raise SourceError(f"{source}: no such file or directory")


def _hidden(p: Path, root: Path) -> bool:
    return any(part.startswith((".", "_")) for part in p.relative_to(root).parts)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(files: list[dict[str, Any]]) -> str:
    """One hash over every input file's name, size and content hash."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f["path"]):
        digest.update(f"{f['path']}\0{f['size']}\0{f['sha256']}\n".encode())
    return digest.hexdigest()


def _land(ctx: RunContext, raws: Iterable[RawFile], contract: Contract, facts_extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write each raw file to the run's staging area as it is read; returns per-file facts."""
    staging = ctx.work_dir / "raw"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    facts = []
    for i, (raw, extra) in enumerate(zip(raws, facts_extra)):
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
                "columns": raw.columns,
                "ignored_columns": raw.ignored_columns,
                "blank_lines": raw.blank_lines,
                "unreadable_records": int(raw.frame["_read_error"].is_not_null().sum()),
                "read_record_by_record": not raw.fast_path,
                "landed": landed.name,
                **extra,
            }
        )
    return facts


def _file_facts(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def land_files(ctx: RunContext, files: list[Path], contract: Contract) -> list[dict[str, Any]]:
    raws = (read_raw(path, contract.column_names) for path in files)  # one file in memory at a time
    return _land(ctx, raws, contract, [_file_facts(p) for p in files])


def _postgres_batch(ctx: RunContext, contract: Contract, source: Source) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from pipelines import postgres

    config = load_config(ctx.config_path).sources.postgres
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
    raw = with_lineage(raw_from_arrow(got.table, Path(source.display), "postgres", []), source.display)
    digest = hashlib.sha256(raw.frame.drop("_source_file").write_ipc(None).getvalue()).hexdigest()
    facts = _land(ctx, [raw], contract, [{"path": source.display, "size": raw.frame.estimated_size(), "sha256": digest}])
    watermark = {
        "low": got.low.isoformat() if got.low else None,
        "high": got.high.isoformat(),
        "rows_without_updated_at": got.null_watermark_rows,
    }
    return facts, watermark


def latest_watermark(warehouse: Path, before: date) -> str | None:
    """The high watermark of the newest batch ingested before `before` (None: full load)."""
    root = warehouse / RAW_ZONE
    highs = []
    for path in sorted(root.glob("ingest_date=*/_ingest.json")):
        if path.parent.name.split("=", 1)[1] < before.isoformat():
            high = json.loads(path.read_text()).get("watermark", {}).get("high")
            if high:
                highs.append(high)
    return max(highs) if highs else None


def run(ctx: RunContext) -> dict[str, Any]:
    """Extract stage: the source's batch for this run -> the raw zone, unchanged, as Parquet.

    A `files` source lands under `raw/orders/snapshot_date=D/` (replaced by a rerun). An
    incremental source lands under `raw/orders/ingest_date=D/`, append-only: a batch already
    ingested for D is reused as it is (the raw zone is the record of what arrived), unless
    the run asks to re-ingest it.
    """
    contract = load_contract("orders")
    source = ctx.source_spec
    if not source.incremental:
        files = discover(ctx.source)
        facts = land_files(ctx, files, contract)
        target = ctx.warehouse / RAW_ZONE / ctx.partition
        swap_in(ctx.work_dir / "raw", target)
        return ctx.save_result("extract", _result(target, facts, source, reused=False))

    target = ctx.warehouse / RAW_ZONE / f"ingest_date={ctx.snapshot_date.isoformat()}"
    record = target / INGEST_RECORD
    if record.is_file() and not ctx.reingest:
        return ctx.save_result("extract", {**json.loads(record.read_text()), "reused": True})
    watermark = None
    if source.kind == "landing":
        arrivals = arrival_dirs(Path(source.location).expanduser()).get(ctx.snapshot_date.isoformat())
        if arrivals is None:
            raise SourceError(
                f"{source.location}: no arrivals for {ctx.snapshot_date} "
                f"(expected a folder date={ctx.snapshot_date.isoformat()})"
            )
        facts = land_files(ctx, discover(str(arrivals)), contract)
    else:
        facts, watermark = _postgres_batch(ctx, contract, source)
    result = _result(target, facts, source, reused=False)
    if watermark is not None:
        result["watermark"] = watermark
    (ctx.work_dir / "raw" / INGEST_RECORD).write_text(json.dumps(result, indent=2))
    swap_in(ctx.work_dir / "raw", target)
    return ctx.save_result("extract", result)


def _result(target: Path, facts: list[dict[str, Any]], source: Source, reused: bool) -> dict[str, Any]:
    return {
        "raw_dir": str(target),
        "source": source.display,
        "source_kind": source.kind,
        "files": facts,
        "rows_in": sum(f["rows"] for f in facts),
        "input_fingerprint": fingerprint(facts),
        "reused": reused,
    }
