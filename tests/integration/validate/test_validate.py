"""Validation end to end on dirty batches: reason codes, reconciliation, batch gates, GX for real."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from pipelines.context import RunContext
from pipelines.errors import BatchRejected
from pipelines.extract import extract
from pipelines.validate import validate

pytestmark = pytest.mark.slow


def _good(i: int, customer: str | None = None, day: int = 1) -> tuple:
    return (
        f"O{i}",
        customer or f"C{i % 7}",
        f"2024-03-{day:02d}T10:00:00Z",
        f"{10 + i}.00",
        "USD",
        "completed",
    )


def _validate(source: Path, tmp_path: Path, **kw) -> tuple[dict, pl.DataFrame, RunContext]:
    ctx = RunContext.create(
        source=str(source), snapshot_date="2024-03-31", warehouse=tmp_path / "wh", **kw
    )
    extract.run(ctx)
    result = validate.run(ctx)
    return result, pl.read_parquet(result["quarantine_path"]), ctx


def _reason(q: pl.DataFrame, order_id: str) -> str:
    return q.filter(pl.col("order_id") == order_id)["reason_codes"].to_list()[0]


def test_dirty_batch_quarantines_each_bad_row_with_its_reason(
    orders_csv: Callable[..., Path], tmp_path: Path
) -> None:
    good = [_good(i) for i in range(200)]
    bad = [
        ("B1", "C1", "2024-03-01T10:00:00Z", "12,50", "USD", "completed"),  # decimal comma
        ("B2", "C1", "2024-03-01T10:00:00Z", "$12.50", "USD", "completed"),  # currency symbol
        ("B3", "C1", "not a date", "1.00", "USD", "completed"),
        ("B4", "C1", "2024-03-01T10:00:00Z", "2000000", "USD", "completed"),  # above the bound
        ("B5", "C1", "2024-03-01T10:00:00Z", "1.00", "XXX", "completed"),  # not ISO 4217
        ("B6", "C1", "2024-03-01T10:00:00Z", "1.00", "USD", "shipped"),  # unknown status
        ("B7", "C1", "2099-01-01T00:00:00Z", "1.00", "USD", "completed"),  # future
        ("B8", "", "2024-03-01T10:00:00Z", "1.00", "USD", "completed"),  # empty required
    ]
    source = orders_csv(good + bad)
    result, q, _ = _validate(source, tmp_path)
    assert _reason(q, "B1") == "UNPARSEABLE_NUMBER"
    assert _reason(q, "B2") == "UNPARSEABLE_NUMBER"
    assert _reason(q, "B3") == "UNPARSEABLE_TIMESTAMP"
    assert _reason(q, "B4") == "OUT_OF_RANGE"
    assert _reason(q, "B5") == "NOT_ACCEPTED_VALUE"
    assert _reason(q, "B6") == "NOT_ACCEPTED_VALUE"
    assert _reason(q, "B7") == "FUTURE_TIMESTAMP"
    assert _reason(q, "B8") == "MISSING_REQUIRED"
    row = q.filter(pl.col("order_id") == "B1").to_dicts()[0]
    assert json.loads(row["raw_values"])["amount"] == "12,50"  # the raw text is kept
    assert row["source_line"] == 202 and row["source_file"] == str(source)
    c = result["counts"]
    assert c == {"rows_in": 208, "rows_accepted": 200, "rows_quarantined": 8, "rows_duplicate": 0}
    assert result["gx"]["success"] is False  # GX itself found the bound/set/future failures
    assert Path(result["gx"]["docs_page"]).is_file()


def test_duplicates_are_counted_and_conflicts_quarantined(
    orders_csv: Callable[..., Path], tmp_path: Path
) -> None:
    rows = [_good(i) for i in range(60)]
    rows += [_good(1), _good(1), _good(2)]  # exact copies
    rows += [("O3", "C3", "2024-03-01T10:00:00Z", "99.00", "USD", "completed")]  # conflict with O3
    result, q, ctx = _validate(orders_csv(rows), tmp_path)
    assert result["counts"] == {
        "rows_in": 64,
        "rows_accepted": 60,
        "rows_quarantined": 1,
        "rows_duplicate": 3,
    }
    conflict = q.to_dicts()[0]
    assert conflict["reason_code"] == "DUPLICATE_CONFLICT"
    assert conflict["source_line"] == 2 + 3  # the first O3 (line 5) lost to the later one
    accepted = pl.read_parquet(result["accepted_path"])
    assert accepted.filter(pl.col("order_id") == "O3")["amount"].to_list() == [99.0]


def test_counts_reconcile_per_file(orders_csv: Callable[..., Path], tmp_path: Path) -> None:
    orders_csv(
        [_good(i) for i in range(50)] + [("X1", "C", "bad", "1", "USD", "completed")], name="a.csv"
    )
    orders_csv([_good(i) for i in range(40, 90)], name="b.csv")  # 10 exact copies of a.csv rows
    result, _, _ = _validate(tmp_path / "source", tmp_path)
    per = {Path(f["file"]).name: f for f in result["per_file"]}
    assert per["a.csv"] == {
        **per["a.csv"],
        "rows_in": 51,
        "rows_accepted": 50,
        "rows_quarantined": 1,
        "rows_duplicate": 0,
    }
    assert per["b.csv"] == {
        **per["b.csv"],
        "rows_in": 50,
        "rows_accepted": 40,
        "rows_quarantined": 0,
        "rows_duplicate": 10,
    }


def test_too_many_bad_rows_rejects_the_batch(
    orders_csv: Callable[..., Path], tmp_path: Path
) -> None:
    rows = [_good(i) for i in range(90)] + [
        (f"B{i}", "C", "2024-03-01", "12,50", "USD", "completed") for i in range(10)
    ]
    with pytest.raises(
        BatchRejected,
        match=r"quarantined_share failed: 10 of 100 lines quarantined \(10.00% >= 5%; 10 of 100 records\)",
    ):
        _validate(orders_csv(rows), tmp_path)


def test_config_can_raise_the_threshold(orders_csv: Callable[..., Path], tmp_path: Path) -> None:
    rows = [_good(i) for i in range(90)] + [
        (f"B{i}", "C", "2024-03-01", "12,50", "USD", "completed") for i in range(10)
    ]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("validation:\n  max_quarantined_percent: 20\n")
    result, _, _ = _validate(orders_csv(rows), tmp_path, config_path=str(cfg))
    assert result["counts"]["rows_quarantined"] == 10


def test_config_can_change_a_gate_severity(orders_csv: Callable[..., Path], tmp_path: Path) -> None:
    rows = [_good(i) for i in range(90)] + [
        (f"B{i}", "C", "2024-03-01", "12,50", "USD", "completed") for i in range(10)
    ]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("validation:\n  rule_severity: {quarantined_share: warn}\n")
    result, _, _ = _validate(orders_csv(rows), tmp_path, config_path=str(cfg))
    assert result["counts"]["rows_quarantined"] == 10
    assert any("quarantined_share failed: 10 of 100 lines" in w for w in result["warnings"])
    cfg.write_text("validation:\n  rule_severity: {quarantined_shares: warn}\n")
    from pipelines.config import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"rule_severity names rule\(s\) quarantined_shares .*its rules: .*quarantined_share",
    ):
        _validate(orders_csv(rows, name="again.csv"), tmp_path, config_path=str(cfg))


def test_missing_required_column_rejects_naming_the_file(
    orders_csv: Callable[..., Path], tmp_path: Path
) -> None:
    source = orders_csv(
        [("O1", "C1", "2024-03-01", "1.00")],
        columns=["order_id", "customer_id", "order_ts", "amount"],
    )
    with pytest.raises(BatchRejected, match=r"orders.csv: required column\(s\) currency missing"):
        _validate(source, tmp_path)


def test_empty_batch_is_rejected(orders_csv: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(BatchRejected, match="batch_not_empty"):
        _validate(orders_csv([]), tmp_path)


def test_future_check_uses_the_run_clock(orders_csv: Callable[..., Path], tmp_path: Path) -> None:
    rows = [_good(i) for i in range(50)] + [
        (
            "F1",
            "C1",
            "2024-03-20T10:15:00Z",
            "1.00",
            "USD",
            "completed",
        ),  # beyond the 10-minute skew
        ("F2", "C1", "2024-03-20T10:05:00Z", "1.00", "USD", "completed"),  # within it
    ]
    source = orders_csv(rows)
    ctx = RunContext.create(
        source=str(source),
        snapshot_date="2024-03-20",
        warehouse=tmp_path / "wh",
        now=datetime(2024, 3, 20, 10, 0, tzinfo=UTC),
        allow_partial_day=True,  # the run clock is in the middle of the snapshot's day
    )
    extract.run(ctx)
    q = pl.read_parquet(validate.run(ctx)["quarantine_path"])
    assert q["order_id"].to_list() == ["F1"]
    assert q["reason_code"].to_list() == ["FUTURE_TIMESTAMP"]


@pytest.mark.slow
def test_row_count_far_from_the_trailing_average_is_a_warning(
    orders_csv: Callable[..., Path], run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    wh = tmp_path / "wh"
    for day in (1, 2):
        run_pipeline(
            orders_csv([_good(i, day=day) for i in range(100)], name=f"d{day}.csv"),
            f"2024-03-{day:02d}",
            warehouse=wh,
        )
    small = run_pipeline(
        orders_csv([_good(i, day=3) for i in range(30)], name="d3.csv"), "2024-03-03", warehouse=wh
    )
    assert small["validation"]["row_count_bounds"] == [50, 150]  # average 100 +- 50%
    assert any(
        "row_count_vs_trailing_average" in w and "observed 30" in w for w in small["warnings"]
    )
    normal = run_pipeline(
        orders_csv([_good(i, day=4) for i in range(90)], name="d4.csv"), "2024-03-04", warehouse=wh
    )
    assert not [w for w in normal["warnings"] if "row_count_vs_trailing_average" in w]


@pytest.mark.slow
def test_currencies_are_converted_or_quarantined(
    orders_csv: Callable[..., Path], run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    fx = tmp_path / "fx.csv"
    fx.write_text("currency,rate\nEUR,1.10\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"fx_rates: {fx}\nvalidation:\n  max_quarantined_percent: 50\n")
    rows = [_good(i, customer="K") for i in range(10)]  # 10 orders of K in USD: 10+11+...+19 = 145
    rows += [("E1", "K", "2024-03-05T10:00:00Z", "100.00", "EUR", "completed")]  # 110 USD
    rows += [("P1", "K", "2024-03-05T10:00:00Z", "100.00", "GBP", "completed")]  # no rate
    manifest = run_pipeline(orders_csv(rows), "2024-03-31", config=cfg)
    assert manifest["quarantine_reasons"] == {"NO_FX_RATE": 1}
    rfm = pl.read_parquet(Path(manifest["tables"]["customer_rfm"]["path"]))
    assert rfm.filter(pl.col("customer_id") == "K")["monetary_total"].item() == pytest.approx(
        145 + 110
    )


def test_a_bad_fx_file_stops_the_run(
    orders_csv: Callable[..., Path], run_pipeline: Callable[..., dict], tmp_path: Path
) -> None:
    from pipelines.errors import SourceError

    fx = tmp_path / "fx.csv"
    fx.write_text("currency,rate\nEUR,1.10\nGBP,-1\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"fx_rates: {fx}\n")
    with pytest.raises(
        SourceError, match=r"fx.csv: 1 bad fx_rates row\(s\) \(line 3: rate.minimum\)"
    ):
        run_pipeline(orders_csv([_good(i) for i in range(10)]), "2024-03-31", config=cfg)
    fx.write_text("currency,rate\nEUR,1.10\nGBP,1.30\nEUR,1.20\n")  # which EUR rate?
    with pytest.raises(
        SourceError, match=r"fx.csv: fx_rates has more than one row for the same currency"
    ):
        run_pipeline(orders_csv([_good(i) for i in range(10)]), "2024-03-31", config=cfg)
