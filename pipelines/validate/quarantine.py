"""Quarantine: rows that break a contract rule, kept with their raw text and the reason.

Reason codes are a small fixed vocabulary (for dashboards and alerting); the rule that fired
(`amount.maximum`, `currency_iso_4217`, ...) says exactly which contract clause it was.
The quarantine zone, like the raw zone, holds source data as received and may contain PII;
it is not a published table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

REASON_CODES: dict[str, str] = {
    "RAGGED_ROW": "The record has more or fewer fields than the CSV header.",
    "INVALID_UTF8": "The record contains bytes that are not valid UTF-8.",
    "MALFORMED_RECORD": "The record cannot be split into fields (bad JSON, a quote in the wrong place).",
    "UNBALANCED_QUOTE": (
        "The line opens a quoted field that does not close within sources.csv.max_record_lines lines "
        "or max_record_chars characters (a stray quote): the line alone is quarantined and reading "
        "goes on at the next line."
    ),
    "MISSING_REQUIRED": "A required field is empty or absent.",
    "UNPARSEABLE_NUMBER": "A number field holds text that is not a plain decimal number (e.g. `12,50`, `$12.50`, `NaN`).",
    "UNPARSEABLE_TIMESTAMP": "A timestamp field is not an ISO 8601 date/time.",
    "UNPARSEABLE_DATE": "A date field is not an ISO 8601 date.",
    "UNPARSEABLE_BOOLEAN": "A boolean field is not true/false.",
    "OUT_OF_RANGE": "A value is outside the contract's minimum/maximum.",
    "PATTERN_MISMATCH": "A value does not match the contract's pattern.",
    "TOO_LONG": "A value is longer than the contract's maxLength.",
    "NOT_ACCEPTED_VALUE": "A value is not in the contract's accepted set.",
    "FUTURE_TIMESTAMP": "The order is later than the run's clock plus the allowed skew.",
    "IMPLAUSIBLE_DATE": "The order is dated before validation.earliest_order_date (a default or garbage date).",
    "DUPLICATE_CONFLICT": "Another row has the same order_id with different content; that row was kept.",
    "NO_FX_RATE": "The order's currency has no rate in the FX table.",
}


def raw_values_json(value_columns: list[str]) -> pl.Expr:
    """The row's source values as a JSON object of text, as read."""
    if not value_columns:
        return pl.lit("{}")
    return pl.struct([pl.col(c).cast(pl.String) for c in value_columns]).struct.json_encode()


def records(
    frame: pl.DataFrame, value_columns: list[str], codes: pl.Expr, rules: pl.Expr
) -> pl.DataFrame:
    """Quarantine candidates from raw rows, with list-typed reason codes and rules."""
    order_id = (
        pl.col("order_id").cast(pl.String)
        if "order_id" in frame.columns
        else pl.lit(None, pl.String)
    )
    # physical lines the record spans (the quarantined-share gate counts lines, not records)
    lines = (
        pl.col("_source_lines").cast(pl.Int64)
        if "_source_lines" in frame.columns
        else pl.lit(1, pl.Int64)
    )
    return frame.select(
        pl.col("_row").cast(pl.UInt64),
        order_id.alias("order_id"),
        pl.col("_source_file").alias("source_file"),
        pl.col("_source_line").alias("source_line"),
        pl.when(pl.col("_read_error").is_null())
        .then(raw_values_json(value_columns))
        .alias("raw_values"),
        pl.col("_raw_line").alias("raw_line"),
        lines.alias("_lines"),
        codes.cast(pl.List(pl.String)).alias("_codes"),
        rules.cast(pl.List(pl.String)).alias("_rules"),
    )


_EMPTY: dict[str, Any] = {
    "_row": pl.UInt64,
    "order_id": pl.String,
    "source_file": pl.String,
    "source_line": pl.Int64,
    "raw_values": pl.String,
    "raw_line": pl.String,
    "_lines": pl.Int64,
    "_codes": pl.List(pl.String),
    "_rules": pl.List(pl.String),
}


def finalize(parts: list[pl.DataFrame], run_id: str, at: datetime) -> pl.DataFrame:
    """One row per quarantined source row (a row failing several rules keeps every code)."""
    frame = pl.concat([pl.DataFrame(schema=_EMPTY), *parts], how="vertical_relaxed")
    merged = (
        frame.group_by("_row", maintain_order=True)
        .agg(
            pl.first("order_id", "source_file", "source_line", "raw_values", "raw_line", "_lines"),
            pl.col("_codes")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique(maintain_order=True),
            pl.col("_rules")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique(maintain_order=True),
        )
        .sort("_row")
    )
    return merged.select(
        "_row",
        "order_id",
        "source_file",
        "source_line",
        pl.col("_codes").list.first().alias("reason_code"),
        pl.col("_codes").list.join(",").alias("reason_codes"),
        pl.col("_rules").list.join(",").alias("rules"),
        "raw_values",
        "raw_line",
        pl.lit(run_id).alias("run_id"),
        pl.lit(at).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
        "_lines",
    )
