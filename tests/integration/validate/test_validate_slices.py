"""A batch validated slice by slice gives the whole batch's result, page and report.

The same frame goes through the real Great Expectations checkpoint twice: whole, and in
slices of 700 rows (uneven: the last slice is short). Every rule outcome (counts, row keys,
samples, success), the stored result behind the Data Docs page and the number of pages must
be equal. The defects are placed so that per-slice answers would be wrong: a duplicated id
whose copies sit in different slices, a `mostly` rule that fails in one slice but holds over
the batch, a row count bound the slices each miss.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.validate.gx import runner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 3_000
SLICE = 700


def _frame() -> pl.DataFrame:
    rows = list(range(ROWS))
    amount: list[float | None] = [float(i % 97) for i in rows]
    for i in (5, 1_401, 2_999):
        amount[i] = -1.0  # below the minimum: quarantined rows, spread over three slices
    for i in (10, 11, 2_100):
        amount[i] = None  # missing: counted, not unexpected
    ids = [f"o{i}" for i in rows]
    ids[2_500] = ids[3]  # one id in slices 1 and 4; neither slice sees the duplicate
    ids[2_501] = ids[3]
    status = ["completed"] * ROWS
    for i in range(100, 400):
        status[i] = "odd"  # 300 rows, all in slice 1 (43% there): `mostly 0.85` fails there only
    code = ["USD"] * ROWS
    code[1_234] = "usd"
    return pl.DataFrame(
        {
            "order_id": ids,
            "amount": amount,
            "status": status,
            "currency": code,
            runner.ROW_KEY: rows,
        }
    )


def _make_suite() -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def meta(rule: str, severity: str = "quarantine") -> dict[str, str]:
        return {"rule": rule, "severity": severity, "reason_code": rule.upper()}

    suite = gx.ExpectationSuite(name="sliced_contract_v1")
    suite.add_expectation(gxe.ExpectColumnToExist(column="order_id", meta=meta("present")))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="amount", meta=meta("req")))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0, meta=meta("min"))
    )
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="order_id", meta=meta("uniq")))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(
            column="status", value_set=["completed"], mostly=0.85, meta=meta("set", "warn")
        )
    )
    suite.add_expectation(
        gxe.ExpectColumnValuesToMatchRegex(column="currency", regex="^[A-Z]{3}$", meta=meta("re"))
    )
    suite.add_expectation(  # every slice is below 1,000 rows; the batch is not
        gxe.ExpectTableRowCountToBeBetween(min_value=2_000, max_value=4_000, meta=meta("rows"))
    )
    return suite


def _stored(docs: Path, run_name: str) -> list[dict[str, Any]]:
    files = [p for p in (docs / runner.RESULTS_DIR).rglob("*.json") if run_name in p.parts]
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]


def _no_nan(value: Any) -> Any:
    """NaN (a missing value, as pandas shows it) as None, and floats to 12 significant digits
    (a percentage computed in another order), so equal results compare equal."""
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.12g}")
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    return value


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "element_count",
        "missing_count",
        "unexpected_count",
        "unexpected_list",
        "unexpected_index_list",
        "partial_unexpected_list",
        "missing_percent",
        "unexpected_percent",
        "unexpected_percent_total",
        "observed_value",
    )
    return _no_nan({k: result.get(k) for k in keep})


@pytest.mark.slow
def test_sliced_validation_equals_the_whole_batch(tmp_path: Path) -> None:
    frame = _frame()
    docs = tmp_path / "docs"
    whole = runner.run_suite(frame, _make_suite, docs, run_name="whole")
    sliced = runner.run_suite(frame, _make_suite, docs, run_name="sliced", slice_rows=SLICE)

    assert (whole.slices, sliced.slices) == (1, 5)
    assert sliced.success == whole.success is False
    assert [_no_nan(asdict(o)) for o in sliced.outcomes] == [
        _no_nan(asdict(o)) for o in whole.outcomes
    ]
    by_rule = {o.rule: o for o in sliced.outcomes}
    # the answers a per-slice reading would get wrong
    assert sorted(by_rule["uniq"].unexpected_rows) == [3, 2_500, 2_501]
    assert by_rule["set"].success and by_rule["set"].unexpected_count == 300
    assert by_rule["rows"].success and by_rule["rows"].observed == ROWS
    assert sorted(by_rule["min"].unexpected_rows) == [5, 1_401, 2_999]
    assert by_rule["req"].unexpected_count == 3 and not by_rule["req"].success
    assert by_rule["re"].unexpected_rows == [1_234]

    # one stored result (so one Data Docs page) per run, equal to the whole batch's
    (stored_whole,) = _stored(docs, "whole")
    (stored_sliced,) = _stored(docs, "sliced")
    assert stored_sliced["statistics"] == stored_whole["statistics"]
    for a, b in zip(stored_sliced["results"], stored_whole["results"], strict=True):
        assert a["expectation_config"]["type"] == b["expectation_config"]["type"]
        assert a["success"] == b["success"]
        assert _comparable(a["result"]) == _comparable(b["result"])
    pages = [p for p in docs.rglob("*.html") if "validations" in p.parts]
    assert len(pages) == 2
    assert sliced.docs_page and Path(sliced.docs_page).is_file()


@pytest.mark.slow
def test_a_batch_smaller_than_a_slice_is_one_slice(tmp_path: Path) -> None:
    frame = _frame().head(500)
    report = runner.run_suite(frame, _make_suite, tmp_path / "docs", "small", slice_rows=SLICE)
    assert report.slices == 1
    rows = {o.rule: o for o in report.outcomes}["rows"]
    assert not rows.success and rows.observed == 500
