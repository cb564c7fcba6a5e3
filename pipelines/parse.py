"""Strict, contract-driven parsing of raw values into typed columns.

A value either parses exactly into its contract type or the row gets a reason code: `12,50`,
`$12.50`, `NaN`, `inf`, `2024-13-01` or an empty required field are never guessed at, coerced
or dropped. Text is trimmed first; an empty field is a missing value. Timestamps are ISO 8601
with `T` or a space between date and time, with `Z`/an offset or none (then UTC), or a plain
date (midnight UTC).
"""

from __future__ import annotations

import polars as pl

from pipelines.contracts import Column, Contract

UNPARSEABLE = {
    "number": "UNPARSEABLE_NUMBER",
    "integer": "UNPARSEABLE_NUMBER",
    "timestamp": "UNPARSEABLE_TIMESTAMP",
    "date": "UNPARSEABLE_DATE",
    "boolean": "UNPARSEABLE_BOOLEAN",
}
_NUMBER = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$"
_INTEGER = r"^[+-]?\d+$"
_UTC = pl.Datetime("us", "UTC")
_TRUE = ("true", "t", "1", "yes", "y")
_FALSE = ("false", "f", "0", "no", "n")

CODES = "_codes"
RULES = "_rules"


def _text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).str.strip_chars().replace("", None)


def _parse_text(col: Column, text: pl.Expr) -> pl.Expr:
    kind = col.logical_type
    if kind == "string":
        return text
    if kind == "number":
        return pl.when(text.str.contains(_NUMBER)).then(text).cast(pl.Float64, strict=False)
    if kind == "integer":
        return pl.when(text.str.contains(_INTEGER)).then(text).cast(col.polars_type, strict=False)
    if kind == "timestamp":
        iso = text.str.replace(r"^(\d{4}-\d{2}-\d{2}) ", "${1}T")
        return pl.coalesce(
            iso.str.strptime(_UTC, "%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, cache=False),
            iso.str.strptime(_UTC, "%Y-%m-%dT%H:%M:%S%.f", strict=False, cache=False),
            pl.when(text.str.len_chars() == 10).then(
                text.str.strptime(_UTC, "%Y-%m-%d", strict=False, cache=False)
            ),
        )
    if kind == "date":
        return text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    if kind == "boolean":
        lower = text.str.to_lowercase()
        return pl.when(lower.is_in(_TRUE)).then(True).when(lower.is_in(_FALSE)).then(False)
    raise ValueError(f"unsupported logical type {kind!r}")


def _parse_typed(col: Column, dtype: pl.DataType) -> pl.Expr | None:
    """Already-typed values (Parquet): convert without a detour through text, or None."""
    c = pl.col(col.name)
    kind = col.logical_type
    if kind == "number" and dtype.is_numeric():
        f = c.cast(pl.Float64)
        return pl.when(f.is_finite()).then(f)
    if kind == "integer" and dtype.is_integer():
        return c.cast(col.polars_type, strict=False)
    if kind == "integer" and dtype.is_float():
        return pl.when(c.is_finite() & (c == c.round())).then(c).cast(col.polars_type, strict=False)
    if kind == "timestamp" and isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return c.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
        return c.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if kind == "timestamp" and dtype == pl.Date:
        return c.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if kind == "date" and dtype == pl.Date:
        return c
    if kind == "date" and isinstance(dtype, pl.Datetime):
        return c.dt.date()
    if kind == "boolean" and dtype == pl.Boolean:
        return c
    return None


def parse_orders(raw: pl.DataFrame, contract: Contract, check_columns: list[str] | None = None) -> pl.DataFrame:
    """Typed contract columns plus `_row` and the list columns `_codes`/`_rules` of failures.

    Absent optional columns come back as typed nulls. `check_columns` names columns whose
    length/pattern rules are checked here rather than by Great Expectations (PII columns,
    which must not reach a validation report).
    """
    check_columns = check_columns or []
    typed: list[pl.Expr] = []
    failures: list[tuple[pl.Expr, pl.Expr, str]] = []  # (row fails, reason code, rule)
    read_error = pl.col("_read_error").is_not_null()
    for col in contract.columns:
        if col.name not in raw.columns:
            typed.append(pl.lit(None, col.polars_type).alias(col.name))
            if col.required:  # extract rejects a file without it; keep the guarantee here too
                failures.append((~read_error, pl.lit("MISSING_REQUIRED"), f"{col.name}.required"))
            continue
        dtype = raw.schema[col.name]
        value = _parse_typed(col, dtype)
        present: pl.Expr
        if value is None:
            text = _text(col.name)
            value = _parse_text(col, text)
            present = text.is_not_null()
        else:
            present = pl.col(col.name).is_not_null()
        typed.append(value.cast(col.polars_type).alias(col.name))
        if col.logical_type in UNPARSEABLE:
            failures.append((present & value.is_null(), pl.lit(UNPARSEABLE[col.logical_type]), f"{col.name}.type"))
        if col.required:
            failures.append((~present & ~read_error, pl.lit("MISSING_REQUIRED"), f"{col.name}.required"))
        if col.name in check_columns:
            text = _text(col.name)
            for rule in col.rules:
                if rule.kind == "max_length":
                    failures.append((text.str.len_chars() > rule.params["value"], pl.lit(rule.reason_code), rule.name))
                elif rule.kind == "pattern":
                    failures.append((~text.str.contains(rule.params["value"]), pl.lit(rule.reason_code), rule.name))
    failures.append((read_error, pl.col("_read_error"), "record.read"))

    def listed(values: list[pl.Expr]) -> pl.Expr:
        whens = [pl.when(cond.fill_null(False)).then(v) for (cond, _, _), v in zip(failures, values)]
        return pl.concat_list(whens).list.drop_nulls()

    return raw.select(
        *typed,
        pl.col("_row"),
        listed([code for _, code, _ in failures]).alias(CODES),
        listed([pl.lit(rule) for _, _, rule in failures]).alias(RULES),
    )
