"""Extract: find the source files, fingerprint them, and land the batch unchanged as Parquet.

The landed batch (`DIR/raw/orders/snapshot_date=D/`) holds every record exactly as read --
text for CSV/JSON Lines, the written types for Parquet -- plus lineage columns, so any later
question ("what did line 4711 of yesterday's file say?") is answered from the warehouse.
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.context import RunContext
from pipelines.contracts import Contract, load_contract
from pipelines.errors import BatchRejected, SourceError
from pipelines.publish import swap_in
from pipelines.readers import SUFFIXES, read_raw

RAW_ZONE = Path("raw") / "orders"


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


def land_files(ctx: RunContext, files: list[Path], contract: Contract) -> list[dict[str, Any]]:
    """Read each file and write it to the run's staging area; returns per-file facts."""
    staging = ctx.work_dir / "raw"
    staging.mkdir(parents=True, exist_ok=True)
    facts = []
    for i, path in enumerate(files):
        raw = read_raw(path, contract.column_names)
        missing = [c for c in contract.required_columns if c not in raw.columns]
        if missing:
            raise BatchRejected(
                f"{path}: required column(s) {', '.join(missing)} missing "
                f"(found: {', '.join(raw.columns) or 'none'}); rule orders.required_columns, nothing published"
            )
        landed = staging / f"part-{i:05d}.parquet"
        raw.frame.write_parquet(landed, compression="zstd")
        facts.append(
            {
                "path": str(path),
                "format": raw.format,
                "size": path.stat().st_size,
                "sha256": sha256_file(path),
                "rows": raw.frame.height,
                "columns": raw.columns,
                "ignored_columns": raw.ignored_columns,
                "blank_lines": raw.blank_lines,
                "unreadable_records": int(raw.frame["_read_error"].is_not_null().sum()),
                "read_record_by_record": not raw.fast_path,
                "landed": landed.name,
            }
        )
    return facts


def run(ctx: RunContext) -> dict[str, Any]:
    """Extract stage: source -> `DIR/raw/orders/snapshot_date=D/part-*.parquet`."""
    contract = load_contract("orders")
    files = discover(ctx.source)
    facts = land_files(ctx, files, contract)
    target = ctx.warehouse / RAW_ZONE / ctx.partition
    swap_in(ctx.work_dir / "raw", target)
    return ctx.save_result(
        "extract",
        {
            "raw_dir": str(target),
            "files": facts,
            "rows_in": sum(f["rows"] for f in facts),
            "input_fingerprint": fingerprint(facts),
        },
    )
