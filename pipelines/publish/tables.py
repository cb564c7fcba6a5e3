"""Published tables as files: cast to the contract's schema, written as one Parquet file each.

Every table a run publishes is first conformed to its contract -- exactly its columns, its
types, its descriptions in the Parquet field metadata, its grain (primary key) checked -- so
the files never drift from the documentation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.contracts import Contract
from pipelines.errors import PublishError
from pipelines.storage import files
from pipelines.storage.faults import checkpoint


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
            name: col.cast(pa.float64(), safe=False)
            if pa.types.is_decimal(col.type) and schema.field(name).type == pa.float64()
            else col
            for name, col in zip(table.column_names, table.columns)
        }
    )
    try:
        cast = table.cast(pa.schema([f.with_nullable(True) for f in schema]), safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise PublishError(
            f"table {contract.name!r}: cannot cast to contract types: {exc}"
        ) from None
    for field in schema:
        if not field.nullable and cast.column(field.name).null_count:
            raise PublishError(
                f"table {contract.name!r}: column {field.name!r} is required but has nulls"
            )
    key = contract.primary_key
    if key and cast.num_rows:
        distinct = cast.group_by(key).aggregate([]).num_rows
        if distinct != cast.num_rows:
            raise PublishError(
                f"table {contract.name!r}: {cast.num_rows - distinct:,} duplicate rows for the key {key} "
                "(its grain is broken)"
            )
    return pa.Table.from_arrays(cast.columns, schema=schema)


def write_table_file(table: pa.Table, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write one Parquet file (zstd, with statistics) and flush it to disk."""
    if metadata:
        extra = {k.encode(): v.encode() for k, v in metadata.items()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint("write_table")
    pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    return path


def write_partition_files(
    table: pa.Table, directory: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write one Parquet file into a fresh staging directory."""
    files.fresh_dir(directory)
    return write_table_file(table, directory / "part-0.parquet", metadata)
