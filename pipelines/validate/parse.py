"""Strict, contract-driven parsing of raw values into typed columns.

A value either parses exactly into its contract type or the row gets a reason code: `12,50`,
`$12.50`, `NaN`, `inf`, `2024-13-01` or an empty required field are never guessed at, coerced
or dropped. Text is trimmed first; an empty field is a missing value. Timestamps are ISO 8601
with `T` or a space between date and time, with `Z`/an offset or none (then UTC), or a plain
date (midnight UTC).

Speed: a timestamp column is parsed first with the single format its first value has (a
fixed format is several times faster than a general one), and only the values that fail it
are tried against the general formats. Reason-code lists are built only for failing rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import polars as pl

from pipelines.contracts import Column, Contract, Rule

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
# Fixed formats tried on a column's first value (fast), then the general ones (complete).
_FAST_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%#z",
    "%Y-%m-%d %H:%M:%S%#z",
)
_GENERAL_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f")

CODES = "_codes"
RULES = "_rules"


def _strptime(text: pl.Series, fmt: str) -> pl.Series:
    return text.str.strptime(_UTC, fmt, strict=False, cache=False)


def parse_timestamps(text: pl.Series) -> pl.Series:
    """UTC timestamps from trimmed ISO 8601 text; null where the text is not one."""
    sample = text.drop_nulls().head(1)
    out = None
    for fmt in _FAST_FORMATS if sample.len() else ():
        if _strptime(sample, fmt).null_count() == 0:
            out = _strptime(text, fmt)
            break
    if out is None:
        out = _nulls(text.name, _UTC, text.len())
    retry = (out.is_null() & text.is_not_null()).arg_true()
    if retry.len():
        sub_text = text.gather(retry)
        iso = sub_text.str.replace(r"^(\d{4}-\d{2}-\d{2}) ", "${1}T")
        parsed = _coalesce([*[_strptime(iso, f) for f in _GENERAL_FORMATS], _date_only(sub_text)])
        out = out.scatter(retry, parsed)
    return out.alias(text.name)


def _nulls(name: str, dtype: pl.DataType, n: int) -> pl.Series:
    return pl.repeat(None, n, dtype=dtype, eager=True).alias(name)


def _date_only(text: pl.Series) -> pl.Series:
    return _strptime(
        text.str.replace(r"^(\d{4}-\d{2}-\d{2})$", "${1}T00:00:00Z"), "%Y-%m-%dT%H:%M:%SZ"
    )


def _coalesce(series: list[pl.Series]) -> pl.Series:
    return reduce(lambda a, b: a.fill_null(b), series)


def _parse_text(col: Column, text: pl.Series) -> pl.Series:
    kind = col.logical_type
    if kind == "string":
        return text
    if kind == "number":
        return text.zip_with(
            text.str.contains(_NUMBER).fill_null(False), pl.Series([None], dtype=pl.String)
        ).cast(pl.Float64, strict=False)
    if kind == "integer":
        ok = text.str.contains(_INTEGER).fill_null(False)
        return text.zip_with(ok, pl.Series([None], dtype=pl.String)).cast(
            col.polars_type, strict=False
        )
    if kind == "timestamp":
        return parse_timestamps(text)
    if kind == "date":
        return text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    if kind == "boolean":
        lower = text.str.to_lowercase()
        return pl.select(
            pl.when(lower.is_in(_TRUE)).then(True).when(lower.is_in(_FALSE)).then(False)
        ).to_series()
    raise ValueError(f"unsupported logical type {kind!r}")


def _parse_typed(col: Column, values: pl.Series) -> pl.Series | None:
    """Already-typed values (Parquet): convert without a detour through text, or None."""
    dtype = values.dtype
    kind = col.logical_type
    if kind == "number" and dtype.is_numeric():
        f = values.cast(pl.Float64)
        return f.zip_with(f.is_finite().fill_null(False), pl.Series([None], dtype=pl.Float64))
    if kind == "integer" and dtype.is_integer():
        return values.cast(col.polars_type, strict=False)
    if kind == "integer" and dtype.is_float():
        whole = (values.is_finite() & (values == values.round())).fill_null(False)
        return values.zip_with(whole, pl.Series([None], dtype=dtype)).cast(
            col.polars_type, strict=False
        )
    if kind == "timestamp" and isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return values.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
        return values.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if kind == "timestamp" and dtype == pl.Date:
        return values.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if kind == "date" and dtype == pl.Date:
        return values
    if kind == "date" and isinstance(dtype, pl.Datetime):
        return values.dt.date()
    if kind == "boolean" and dtype == pl.Boolean:
        return values
    return None


def _trimmed(values: pl.Series) -> pl.Series:
    return values.cast(pl.String).str.strip_chars().replace("", None)


def _rule_fails(rule: Rule, value: pl.Series, text: pl.Series) -> pl.Series | None:
    """Rows breaking a value rule, checked in Polars (for data Great Expectations never sees)."""
    p = rule.params
    if rule.kind == "max_length":
        return text.str.len_chars() > p["value"]
    if rule.kind == "pattern":
        return ~text.str.contains(p["value"])
    if rule.kind == "minimum":
        return value < p["value"]
    if rule.kind == "maximum":
        return value > p["value"]
    if rule.kind == "accepted_values":
        return ~value.is_in(pl.Series(p["values"], dtype=value.dtype)) & value.is_not_null()
    return None


@dataclass
class Parsed:
    """Typed values of every row, and the reasons of the rows that failed (usually few)."""

    typed: pl.DataFrame  # contract columns + `_row`
    failed: pl.Series  # boolean, aligned with `typed`
    failures: pl.DataFrame  # `_row`, `_codes`, `_rules` (lists) of the failed rows


def parse_batch(
    raw: pl.DataFrame, contract: Contract, check_columns: list[str] | None = None
) -> Parsed:
    """Parse every contract column of `raw` (which holds `_row` and the lineage columns).

    Absent optional columns come back as typed nulls. `check_columns` names columns whose
    value rules (length, pattern, bounds, accepted values) are checked here rather than by
    Great Expectations: PII columns, which must not reach a validation report, and small
    reference tables.
    """
    check_columns = check_columns or []
    n = raw.height
    read_error = raw["_read_error"].is_not_null()
    no_read_error = ~read_error
    typed: list[pl.Series] = []
    failures: list[tuple[pl.Series, str | None, str]] = []  # (row fails, reason code, rule)
    for col in contract.columns:
        if col.name not in raw.columns:
            typed.append(_nulls(col.name, col.polars_type, n))
            if col.required:  # extract rejects a file without it; keep the guarantee here too
                failures.append((no_read_error, "MISSING_REQUIRED", f"{col.name}.required"))
            continue
        values = raw[col.name]
        value = _parse_typed(col, values)
        text = None
        if value is None:
            text = _trimmed(values)
            value = _parse_text(col, text)
            present = text.is_not_null()
        else:
            present = values.is_not_null()
        typed.append(value.cast(col.polars_type).alias(col.name))
        if col.logical_type in UNPARSEABLE:
            failures.append(
                (present & value.is_null(), UNPARSEABLE[col.logical_type], f"{col.name}.type")
            )
        if col.required:
            failures.append((~present & no_read_error, "MISSING_REQUIRED", f"{col.name}.required"))
        if col.name in check_columns:
            text = text if text is not None else _trimmed(values)
            for rule in col.rules:
                fails = _rule_fails(rule, value, text)
                if fails is not None:
                    failures.append((fails.fill_null(False), rule.reason_code, rule.name))
    failures.append((read_error, None, "record.read"))

    masks = [m.fill_null(False) for m, _, _ in failures]
    failed = reduce(lambda a, b: a | b, masks).alias("_failed")
    rows = failed.arg_true()
    sub = pl.DataFrame({f"m{i}": m.gather(rows) for i, m in enumerate(masks)}).with_columns(
        raw["_read_error"].gather(rows).alias("_read_error"), raw["_row"].gather(rows).alias("_row")
    )

    def listed(values: list[pl.Expr]) -> pl.Expr:
        whens = [pl.when(pl.col(f"m{i}")).then(v) for i, v in enumerate(values)]
        return pl.concat_list(whens).list.drop_nulls()

    return Parsed(
        typed=pl.DataFrame(typed).with_columns(raw["_row"]),
        failed=failed,
        failures=sub.select(
            "_row",
            listed([pl.lit(c) if c else pl.col("_read_error") for _, c, _ in failures]).alias(
                CODES
            ),
            listed([pl.lit(r) for _, _, r in failures]).alias(RULES),
        ),
    )
