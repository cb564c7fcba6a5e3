"""Strict parsing: a value parses exactly into its contract type or the row gets a reason code."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from pipelines.contracts import load_contract
from pipelines.validate.parse import CODES, RULES, parse_batch

CONTRACT = load_contract("orders")


def _with_codes(parsed) -> list[dict]:
    """Each row's typed values with its (possibly empty) lists of reason codes and rules."""
    return (
        parsed.typed.join(parsed.failures, on="_row", how="left", maintain_order="left")
        .with_columns(pl.col(CODES).fill_null([]), pl.col(RULES).fill_null([]))
        .to_dicts()
    )


GOOD = {
    "order_id": "O1",
    "customer_id": "C1",
    "order_ts": "2024-01-01T10:00:00Z",
    "amount": "12.50",
    "currency": "USD",
}


def _parse(**overrides: str | None) -> dict:
    row = {**GOOD, **overrides}
    raw = pl.DataFrame(
        {k: [v] for k, v in row.items()}, schema=dict.fromkeys(row, pl.String)
    ).with_columns(
        pl.lit("f.csv").alias("_source_file"),
        pl.lit(2, pl.Int64).alias("_source_line"),
        pl.lit(None, pl.String).alias("_read_error"),
        pl.lit(None, pl.String).alias("_raw_line"),
        pl.lit(0, pl.UInt32).alias("_row"),
    )
    p = parse_batch(raw, CONTRACT, check_columns=CONTRACT.pii_columns)
    return _with_codes(p)[0]


def test_good_row_parses_with_no_failures() -> None:
    out = _parse()
    assert out[CODES] == []
    assert out["amount"] == 12.5
    assert out["order_ts"] == datetime(2024, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["12,50", "$12.50", "NaN", "inf", "-inf", "1.2.3", "12 50", "0x10", "€5"]
)
def test_unparseable_amounts(text: str) -> None:
    out = _parse(amount=text)
    assert out[CODES] == ["UNPARSEABLE_NUMBER"]
    assert out[RULES] == ["amount.type"]


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0.0), ("-3.5", -3.5), (" 7 ", 7.0), ("1e3", 1000.0), (".5", 0.5)]
)
def test_plain_numbers_parse(text: str, value: float) -> None:
    out = _parse(amount=text)
    assert out[CODES] == [] and out["amount"] == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T10:00:00Z", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01 10:00:00", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T12:00:00+02:00", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T10:00:00.250Z", datetime(2024, 1, 1, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_timestamps_become_utc(text: str, expected: datetime) -> None:
    out = _parse(order_ts=text)
    assert out[CODES] == [] and out["order_ts"] == expected


@pytest.mark.parametrize(
    "text", ["2024-13-01", "01/02/2024", "yesterday", "2024-01-01T25:00:00Z", "1704103200"]
)
def test_unparseable_timestamps(text: str) -> None:
    assert _parse(order_ts=text)[CODES] == ["UNPARSEABLE_TIMESTAMP"]


@pytest.mark.parametrize("column", ["order_id", "customer_id", "order_ts", "amount", "currency"])
@pytest.mark.parametrize("empty", [None, "", "   "])
def test_empty_required_fields(column: str, empty: str | None) -> None:
    out = _parse(**{column: empty})
    assert out[CODES] == ["MISSING_REQUIRED"]
    assert out[RULES] == [f"{column}.required"]


def test_several_failures_are_all_reported() -> None:
    out = _parse(amount="12,50", order_ts="nope", customer_id="")
    assert sorted(out[CODES]) == ["MISSING_REQUIRED", "UNPARSEABLE_NUMBER", "UNPARSEABLE_TIMESTAMP"]


def test_pii_length_is_checked_here_not_by_gx() -> None:
    out = _parse(email="x" * 400)
    assert out[CODES] == ["TOO_LONG"] and out[RULES] == ["email.max_length"]


def test_read_errors_pass_through() -> None:
    raw = pl.DataFrame(
        {
            "order_id": [None],
            "_source_file": ["f"],
            "_source_line": [3],
            "_read_error": ["RAGGED_ROW"],
            "_raw_line": ["a,b"],
        },
        schema={
            "order_id": pl.String,
            "_source_file": pl.String,
            "_source_line": pl.Int64,
            "_read_error": pl.String,
            "_raw_line": pl.String,
        },
    ).with_columns(pl.lit(0, pl.UInt32).alias("_row"))
    out = _with_codes(parse_batch(raw, CONTRACT))[0]
    assert out[CODES] == ["RAGGED_ROW"] and out[RULES] == ["record.read"]


def test_typed_parquet_values() -> None:
    raw = pl.DataFrame(
        {
            "order_id": ["O1", "O2"],
            "customer_id": ["C1", "C2"],
            "order_ts": [datetime(2024, 1, 1, 12), datetime(2024, 1, 1, 13)],  # naive = UTC
            "amount": [float("nan"), 3],
            "currency": ["USD", "USD"],
            "quantity": [1.0, 2.5],
        }
    ).with_columns(
        pl.lit("f.parquet").alias("_source_file"),
        pl.int_range(1, 3, dtype=pl.Int64).alias("_source_line"),
        pl.lit(None, pl.String).alias("_read_error"),
        pl.lit(None, pl.String).alias("_raw_line"),
        pl.int_range(0, 2, dtype=pl.UInt32).alias("_row"),
    )
    out = _with_codes(parse_batch(raw, CONTRACT))
    assert out[0][CODES] == ["UNPARSEABLE_NUMBER"]  # NaN amount
    assert out[1][CODES] == ["UNPARSEABLE_NUMBER"]  # 2.5 is not an integer quantity
    assert out[1]["order_ts"] == datetime(2024, 1, 1, 13, tzinfo=UTC)
