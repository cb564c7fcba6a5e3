"""One validation result from a batch validated slice by slice.

Great Expectations' pandas engine holds its whole batch as one pandas frame (several times
the Polars batch's size). Validating bounded row slices keeps that copy bounded; the slices'
results are then merged here into the result one whole-batch run would have given, so the
report, the quarantine and the Data Docs page do not depend on the slice size:

- row-wise expectations (not null, between, in set, regex, lengths): counts summed, unexpected
  values and row keys concatenated in row order, percentages and `mostly` re-evaluated;
- expectations over the whole batch are recomputed once over all rows, never per slice:
  uniqueness (a value repeated in two slices is unexpected in both) in Polars, the table row
  count from the total;
- column existence is the same in every slice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

PARTIAL = 20  # GX's partial_unexpected_count: values shown in summaries and Data Docs
WHOLE_BATCH = {"expect_column_values_to_be_unique", "expect_table_row_count_to_be_between"}


@dataclass(frozen=True)
class WholeBatch:
    """What the rules over the whole batch need, computed once over every row.

    `duplicates(column)`: the rows (row key, value) whose non-null value occurs more than once
    in the batch, in row order -- from a frame in memory, or from DuckDB over files on disk.
    """

    rows: int
    duplicates: Callable[[str], pl.DataFrame]

    @classmethod
    def of(cls, frame: pl.DataFrame, row_key: str) -> WholeBatch:
        return cls(frame.height, lambda column: _duplicates(frame, column, row_key))


def row_slices(frame: pl.DataFrame, rows: int) -> Iterator[pl.DataFrame]:
    """Zero-copy slices of at most `rows` rows (one, possibly empty, for a small batch)."""
    if frame.height <= rows:
        yield frame
        return
    for offset in range(0, frame.height, rows):
        yield frame.slice(offset, rows)


def rebatch(frames: Iterable[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    """The rows of `frames`, in order, in slices of at most `rows` rows (one, maybe empty, at least).

    Small parts (many small files) are joined so GX runs once per slice, not once per part;
    large ones are cut.
    """
    pending: list[pl.DataFrame] = []
    held = 0
    yielded = False
    empty: pl.DataFrame | None = None
    for frame in frames:
        empty = frame.clear() if empty is None else empty
        for part in row_slices(frame, rows):
            if held + part.height > rows and pending:
                yield pl.concat(pending)
                yielded = True
                pending, held = [], 0
            if part.height:
                pending.append(part)
                held += part.height
    if pending:
        yield pl.concat(pending)
    elif not yielded and empty is not None:
        yield empty


def merge(slices: list[Any], whole: WholeBatch) -> Any:
    """The slices' `ExpectationSuiteValidationResult`s as one, for the batch `whole`.

    The first slice's result object is reused (its identity, meta and suite stay); each
    expectation's result is replaced by the merged one, and the statistics recomputed.
    """
    merged = slices[0]
    if len(slices) == 1:
        return merged
    for i, first in enumerate(merged.results):
        parts = [s.results[i] for s in slices]
        kind = first.expectation_config.type
        kwargs = first.expectation_config.kwargs
        raised = [p for p in parts if _raised(p.exception_info)]
        if raised:  # an expectation that could not be computed on a slice failed on the batch
            first.success, first.result, first.exception_info = False, {}, raised[0].exception_info
            continue
        if kind == "expect_table_row_count_to_be_between":
            first.result = {"observed_value": whole.rows}
            first.success = _between(whole.rows, kwargs)
        elif kind == "expect_column_values_to_be_unique":
            first.result = _merged_map([p.result for p in parts])
            _replace_unexpected(first.result, whole.duplicates(kwargs["column"]))
            first.success = _map_success(first.result, kwargs)
        elif "unexpected_count" in (first.result or {}):
            first.result = _merged_map([p.result for p in parts])
            first.success = _map_success(first.result, kwargs)
        else:  # column existence and other checks of the schema: equal in every slice
            first.success = all(p.success for p in parts)
    results = merged.results
    passed = sum(1 for r in results if r.success)
    merged.statistics = {
        "evaluated_expectations": len(results),
        "successful_expectations": passed,
        "unsuccessful_expectations": len(results) - passed,
        "success_percent": 100.0 * passed / len(results) if results else None,
    }
    merged.success = passed == len(results)
    return merged


def _raised(info: Any) -> bool:
    """GX reports errors flat ({"raised_exception": ...}) or per metric ({metric: {...}})."""
    if not isinstance(info, dict):
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(_raised(v) for v in info.values())


def _merged_map(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A column map expectation's COMPLETE result over the rows of all parts."""
    out = dict(parts[0])
    out["element_count"] = sum(int(p.get("element_count") or 0) for p in parts)
    if "missing_count" in out:
        out["missing_count"] = sum(int(p.get("missing_count") or 0) for p in parts)
    out["unexpected_list"] = [v for p in parts for v in p.get("unexpected_list") or []]
    out["unexpected_index_list"] = [v for p in parts for v in p.get("unexpected_index_list") or []]
    out["unexpected_count"] = sum(int(p.get("unexpected_count") or 0) for p in parts)
    out.pop("unexpected_index_query", None)  # pandas positions within one slice: meaningless
    _percentages(out)
    return {k: v for k, v in out.items() if k in parts[0]}  # the keys GX gives this kind


def _replace_unexpected(result: dict[str, Any], duplicates: pl.DataFrame) -> None:
    column = duplicates.columns[1]
    values = duplicates[column].to_pandas().tolist()  # the values as GX's pandas frame held them
    keys = duplicates[duplicates.columns[0]].to_list()
    result["unexpected_list"] = values
    result["unexpected_index_list"] = [
        {column: v, duplicates.columns[0]: k} for k, v in zip(keys, values, strict=True)
    ]
    result["unexpected_count"] = len(values)
    _percentages(result)


def _percentages(out: dict[str, Any]) -> None:
    """The derived fields GX gives a column map result, from its counts and lists (in place).

    Percentages of the non-missing values where GX reports missing values, else of all rows
    (`not null`, whose unexpected values are the missing ones).
    """
    total, unexpected = out["element_count"], out["unexpected_count"]
    missing = out.get("missing_count") or 0
    nonmissing = total - missing
    derived: dict[str, Any] = {
        "missing_percent": 100.0 * missing / total if total else None,
        "unexpected_percent_total": 100.0 * unexpected / total if total else None,
        "unexpected_percent_nonmissing": 100.0 * unexpected / nonmissing if nonmissing else None,
        "partial_unexpected_list": out["unexpected_list"][:PARTIAL],
        "partial_unexpected_index_list": out["unexpected_index_list"][:PARTIAL],
    }
    derived["unexpected_percent"] = (
        derived["unexpected_percent_nonmissing"]
        if "missing_count" in out
        else derived["unexpected_percent_total"]
    )
    counts = Counter(_hashable(v) for v in out["unexpected_list"])
    derived["partial_unexpected_counts"] = [
        {"value": value, "count": count}
        for value, count in sorted(counts.items(), key=lambda vc: (-vc[1], str(vc[0])))[:PARTIAL]
    ]
    out.update({k: v for k, v in derived.items() if k in out})


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _map_success(result: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    """GX's rule: with `mostly`, the share of expected non-missing values must reach it."""
    nonmissing = result["element_count"] - (result.get("missing_count") or 0)
    if nonmissing == 0:
        return True
    mostly = kwargs.get("mostly")
    if mostly is None or mostly == 1:
        return bool(result["unexpected_count"] == 0)
    return bool((nonmissing - result["unexpected_count"]) / nonmissing >= float(mostly))


def _between(value: int, kwargs: dict[str, Any]) -> bool:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and (value <= low if kwargs.get("strict_min") else value < low):
        return False
    return not (high is not None and (value >= high if kwargs.get("strict_max") else value > high))


def _duplicates(whole: pl.DataFrame, column: str, row_key: str) -> pl.DataFrame:
    """The rows (row key, value) whose non-null value occurs more than once, in row order."""
    return whole.select(row_key, column).filter(
        pl.col(column).is_not_null() & pl.col(column).is_duplicated()
    )
