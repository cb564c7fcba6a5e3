"""Published tables as files: cast to the contract's schema, written as one Parquet file each.

Every table a run publishes is first conformed to its contract -- exactly its columns, its
types, its descriptions in the Parquet field metadata, its grain (primary key) checked -- so
the files never drift from the documentation.

Money is published as the contract's `DECIMAL(p,s)`. A value with more decimals than `s` is
rounded half away from zero (`ROUNDING`, as DuckDB casts decimals: 2.675 -> 2.68, -2.675 ->
-2.68); a DOUBLE is first read to `FLOAT_SCALE` decimal places, nearest, which drops its binary
noise (2.675 is stored as 2.67499999999999982...), then rounded the same way. Rounding never
fails; a value with more integer digits than `p - s` allows, a NaN or an infinity does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.contracts import Contract
from pipelines.errors import PublishError
from pipelines.storage import files
from pipelines.storage.faults import checkpoint

ROUNDING = "half_towards_infinity"  # Arrow's name for half away from zero
FLOAT_SCALE = 10  # a DOUBLE becomes a decimal of this scale (nearest) before it is rounded


def to_decimal(
    column: pa.ChunkedArray | pa.Array, target: pa.Decimal128Type, where: str
) -> pa.ChunkedArray | pa.Array:
    """`column` as `target`, rounded half away from zero to its scale; overflow is an error."""
    try:
        if pa.types.is_floating(column.type):
            values = column.cast(pa.float64())
            bad = pc.sum(pc.invert(pc.is_finite(values))).as_py() or 0
            if bad:
                raise PublishError(
                    f"{where}: {bad:,} NaN or infinite value(s) cannot be published as "
                    f"DECIMAL({target.precision},{target.scale})"
                )
            column = values.cast(pa.decimal128(38, FLOAT_SCALE))
        elif pa.types.is_integer(column.type):
            column = column.cast(pa.decimal128(38, 0))
        if pa.types.is_decimal(column.type) and column.type.scale > target.scale:
            column = pc.round(column, ndigits=target.scale, round_mode=ROUNDING)
        return column.cast(target, safe=True)  # exact now; only too many digits fail
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise PublishError(
            f"{where}: does not fit DECIMAL({target.precision},{target.scale}): {exc}"
        ) from None


def conform(table: pa.Table, contract: Contract, check_key: bool = True) -> pa.Table:
    """The table with exactly the contract's columns, types and descriptions.

    `check_key=False` for one batch of a larger table, whose grain is checked over all of it
    (`grain_error`).
    """
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
    # Exact DECIMAL sums from SQL become the contract's DOUBLE (rounding is the point there);
    # money becomes the contract's DECIMAL, rounded to its scale (see the module docstring).
    columns = {}
    for name, col in zip(table.column_names, table.columns):
        target = schema.field(name).type
        if pa.types.is_decimal(target) and col.type != target:
            col = to_decimal(col, target, f"table {contract.name!r}, column {name!r}")
        elif pa.types.is_decimal(col.type) and target == pa.float64():
            col = col.cast(pa.float64(), safe=False)
        columns[name] = col
    table = pa.table(columns)
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
    if check_key and key and cast.num_rows:
        distinct = cast.group_by(key).aggregate([]).num_rows
        if distinct != cast.num_rows:
            raise grain_error(contract, cast.num_rows - distinct)
    return pa.Table.from_arrays(cast.columns, schema=schema)


def grain_error(contract: Contract, duplicates: int) -> PublishError:
    return PublishError(
        f"table {contract.name!r}: {duplicates:,} duplicate rows for the key {contract.primary_key} "
        "(its grain is broken)"
    )


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


def write_conformed_batches(
    batches: Iterable[pa.RecordBatch],
    contract: Contract,
    directory: Path,
    metadata: dict[str, str] | None = None,
) -> int:
    """Conform each batch to the contract and write them as one Parquet file (one row group a
    batch) into a fresh staging directory; one batch in memory at a time. Returns the rows.

    The caller checks the grain over the whole table (`grain_error`): a batch sees only itself.
    """
    files.fresh_dir(directory)
    path = directory / "part-0.parquet"
    schema = contract.arrow_schema()
    if metadata:
        extra = {k.encode(): v.encode() for k, v in metadata.items()}
        schema = schema.with_metadata({**(schema.metadata or {}), **extra})
    checkpoint("write_table")
    rows = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in batches:
            table = conform(pa.Table.from_batches([batch]), contract, check_key=False)
            writer.write_table(table.replace_schema_metadata(schema.metadata))
            rows += table.num_rows
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    return rows
