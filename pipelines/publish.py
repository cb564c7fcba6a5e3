"""Atomic publication of partitions: a reader sees the old partition or the new one, never half.

A partition is written completely into a staging directory on the same filesystem (under
the warehouse's `_work/`), then swapped into place. On Linux the swap is one
`renameat2(RENAME_EXCHANGE)` call, atomic even when the partition already exists; elsewhere
the old partition is renamed aside first and the new one renamed in (a reader may then
briefly find no partition, but never a partial one). The replaced files are deleted after
the swap; readers that already opened them keep reading them.

Published tables are cast to their contract's Arrow schema, so the Parquet field metadata
carries each column's description and the types never drift from the documentation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.context import RunContext
from pipelines.contracts import Contract, load_contract
from pipelines.errors import PublishError
from pipelines.jsonfile import read_json, write_json

MARTS_ZONE = Path("marts")
QUARANTINE_ZONE = Path("quarantine") / "orders"

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths; False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_in(staged: Path, target: Path) -> None:
    """Make the complete directory `staged` appear at `target`, replacing what was there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        if _renameat2_exchange(staged, target):
            shutil.rmtree(staged)  # now holds the previous partition
        else:
            aside = target.with_name(f".{target.name}.replaced")
            shutil.rmtree(aside, ignore_errors=True)
            os.rename(target, aside)
            os.rename(staged, target)
            shutil.rmtree(aside)
    else:
        os.rename(staged, target)
    _fsync_dir(target.parent)


def conform(table: pa.Table, contract: Contract) -> pa.Table:
    """The table with exactly the contract's columns, types and descriptions."""
    expected = contract.column_names
    missing = [c for c in expected if c not in table.column_names]
    extra = [c for c in table.column_names if c not in expected]
    if missing or extra:
        raise PublishError(
            f"table {contract.name!r} does not match its contract {contract.path}: "
            f"missing {missing or 'none'}, not in contract {extra or 'none'}"
        )
    schema = contract.arrow_schema()
    table = table.select(expected)
    # Exact DECIMAL money from SQL becomes the contract's DOUBLE (rounding is the point there).
    table = pa.table(
        {
            name: col.cast(pa.float64(), safe=False) if pa.types.is_decimal(col.type) and schema.field(name).type == pa.float64() else col
            for name, col in zip(table.column_names, table.columns)
        }
    )
    try:
        cast = table.cast(pa.schema([f.with_nullable(True) for f in schema]), safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise PublishError(f"table {contract.name!r}: cannot cast to contract types: {exc}") from None
    for field in schema:
        if not field.nullable and cast.column(field.name).null_count:
            raise PublishError(f"table {contract.name!r}: column {field.name!r} is required but has nulls")
    key = contract.primary_key
    if key and cast.num_rows:
        distinct = cast.group_by(key).aggregate([]).num_rows
        if distinct != cast.num_rows:
            raise PublishError(
                f"table {contract.name!r}: {cast.num_rows - distinct:,} duplicate rows for the key {key} "
                "(its grain is broken)"
            )
    return pa.Table.from_arrays(cast.columns, schema=schema)


def write_partition_files(table: pa.Table, directory: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write one Parquet file into a fresh staging directory (zstd, with statistics)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}})
    path = directory / "part-0.parquet"
    pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    return path


def run(ctx: RunContext) -> dict[str, Any]:
    """Publish stage: swap every built table and the quarantine into their partitions.

    Safe to retry: each swap is recorded in the work dir, and a retried publish skips what
    this run has already swapped in.
    """
    marts = ctx.load_result("marts")
    built = Path(marts["publish_dir"])
    done_path = ctx.work_dir / "published.json"
    done: dict[str, str] = read_json(done_path) or {}

    def record(name: str, target: Path) -> None:
        done[name] = str(target)
        write_json(done_path, done)

    for name in sorted(marts["tables"]):
        if name in done:
            continue
        target = ctx.warehouse / MARTS_ZONE / name / ctx.partition
        swap_in(built / name, target)
        record(name, target)

    # The quarantine belongs to the batch this run ingested (a rebuild of a past snapshot has none).
    if "quarantine" not in done and ctx.has_result("validate"):
        q = pq.read_table(ctx.load_result("validate")["quarantine_path"]).drop_columns(["_row"])
        q_staged = ctx.work_dir / "quarantine_partition"
        write_partition_files(conform(q, load_contract("quarantine_orders")), q_staged, {"run_id": ctx.run_id})
        q_target = ctx.warehouse / QUARANTINE_ZONE / ctx.partition
        swap_in(q_staged, q_target)
        record("quarantine", q_target)
    return ctx.save_result(
        "publish",
        {"tables": {n: p for n, p in done.items() if n != "quarantine"}, "quarantine": done.get("quarantine")},
    )
