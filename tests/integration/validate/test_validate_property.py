"""Property: on any mix of good and dirty rows, every row is accounted for, with the right reason.

Hypothesis builds a CSV from row kinds -- good rows, each class of bad value, unreadable lines,
exact copies and conflicting versions of earlier orders -- and the expected outcome of every
line is derived from the kinds alone (not from the pipeline's code).
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.context import RunContext
from pipelines.extract import extract
from pipelines.validate import validate

HEADER = b"order_id,customer_id,order_ts,amount,currency,status\n"

BAD = {
    # kind: (line bytes for row i, expected reason code)
    "decimal_comma": (
        lambda i: f'B{i},C1,2024-03-01T10:00:00Z,"12,50",USD,completed',
        "UNPARSEABLE_NUMBER",
    ),
    "currency_symbol": (
        lambda i: f"B{i},C1,2024-03-01T10:00:00Z,$12.50,USD,completed",
        "UNPARSEABLE_NUMBER",
    ),
    "nan": (lambda i: f"B{i},C1,2024-03-01T10:00:00Z,NaN,USD,completed", "UNPARSEABLE_NUMBER"),
    "bad_timestamp": (lambda i: f"B{i},C1,03/01/2024,1.00,USD,completed", "UNPARSEABLE_TIMESTAMP"),
    "empty_customer": (
        lambda i: f"B{i},,2024-03-01T10:00:00Z,1.00,USD,completed",
        "MISSING_REQUIRED",
    ),
    "empty_amount": (lambda i: f"B{i},C1,2024-03-01T10:00:00Z,,USD,completed", "MISSING_REQUIRED"),
    "too_few_fields": (lambda i: f"B{i},C1,2024-03-01T10:00:00Z", "RAGGED_ROW"),
    "too_many_fields": (
        lambda i: f"B{i},C1,2024-03-01T10:00:00Z,1.00,USD,completed,x",
        "RAGGED_ROW",
    ),
    "invalid_utf8": (
        lambda i: f"B{i},C\udcff1,2024-03-01T10:00:00Z,1.00,USD,completed",
        "INVALID_UTF8",
    ),
    "future": (lambda i: f"B{i},C1,2999-01-01T00:00:00Z,1.00,USD,completed", "FUTURE_TIMESTAMP"),
    "too_large": (
        lambda i: f"B{i},C1,2024-03-01T10:00:00Z,5000000.00,USD,completed",
        "OUT_OF_RANGE",
    ),
    "unknown_currency": (
        lambda i: f"B{i},C1,2024-03-01T10:00:00Z,1.00,ABC,completed",
        "NOT_ACCEPTED_VALUE",
    ),
    "unknown_status": (
        lambda i: f"B{i},C1,2024-03-01T10:00:00Z,1.00,USD,lost",
        "NOT_ACCEPTED_VALUE",
    ),
}
KINDS = ["good", "copy", "conflict", *BAD]


def _good(i: int) -> str:
    return f"G{i},C{i % 5},2024-03-{1 + i % 28:02d}T10:00:00Z,{10 + i}.00,USD,completed"


def build(kinds: list[str]) -> tuple[bytes, dict]:
    """The CSV and what must happen to each of its lines."""
    lines: list[str] = []
    good_lines: dict[str, list[int]] = {}  # order id -> lines of its distinct versions, in order
    good_text: dict[str, str] = {}
    expect = {"accepted": 0, "duplicate": 0, "bad": {}, "conflict_lines": set()}
    for i, kind in enumerate(kinds):
        line_no = len(lines) + 2
        if kind == "good" or (kind in ("copy", "conflict") and not good_text):
            oid = f"G{i}"
            lines.append(_good(i))
            good_text[oid] = lines[-1]
            good_lines[oid] = [line_no]
            expect["accepted"] += 1
        elif kind == "copy":
            oid = sorted(good_text)[i % len(good_text)]
            lines.append(good_text[oid])  # an exact copy of the latest version
            expect["duplicate"] += 1
        elif kind == "conflict":
            oid = sorted(good_text)[i % len(good_text)]
            text = f"{oid},C9,2024-03-02T11:00:00Z,{1000 + i}.00,USD,completed"
            lines.append(text)
            good_text[oid] = text
            good_lines[oid].append(line_no)
        else:
            make, code = BAD[kind]
            lines.append(make(i))
            expect["bad"][line_no] = code
    for versions in good_lines.values():
        expect["conflict_lines"].update(versions[:-1])  # every version but the last read loses
    data = HEADER + b"".join(line.encode("utf-8", "surrogateescape") + b"\n" for line in lines)
    return data, expect


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from(KINDS), min_size=1, max_size=60).map(lambda ks: ["good", *ks]))
@pytest.mark.slow
def test_every_row_is_accounted_for(tmp_path_factory, kinds: list[str]) -> None:
    data, expect = build(kinds)
    base = tmp_path_factory.mktemp("prop")
    source = base / "orders.csv"
    source.write_bytes(data)
    config = base / "lenient.yaml"
    config.write_text("validation:\n  max_quarantined_percent: 100\n")
    ctx = RunContext.create(
        source=str(source),
        snapshot_date="2024-03-31",
        warehouse=base / "wh",
        config_path=str(config),
    )
    extract.run(ctx)
    result = validate.run(ctx)
    counts = result["counts"]
    q = pl.read_parquet(result["quarantine_path"])

    assert counts["rows_in"] == len(kinds)
    assert (
        counts["rows_in"]
        == counts["rows_accepted"] + counts["rows_quarantined"] + counts["rows_duplicate"]
    )
    assert counts["rows_accepted"] == expect["accepted"]
    assert counts["rows_duplicate"] == expect["duplicate"]
    codes_by_line = dict(zip(q["source_line"].to_list(), q["reason_codes"].to_list()))
    for line, code in expect["bad"].items():
        assert code in codes_by_line.get(line, "").split(","), (line, code, codes_by_line.get(line))
    conflict_lines = {
        line for line, codes in codes_by_line.items() if codes == "DUPLICATE_CONFLICT"
    }
    assert conflict_lines == expect["conflict_lines"]
    assert counts["rows_quarantined"] == len(expect["bad"]) + len(expect["conflict_lines"])
    assert (
        q["raw_values"].is_not_null().sum() + q["raw_line"].is_not_null().sum() == q.height
    )  # raw text kept
