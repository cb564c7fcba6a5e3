"""Published tables conform to their contracts: columns, types, required values, grain."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pyarrow as pa
import pytest

from pipelines.contracts import Column, Contract, load_contract
from pipelines.errors import PublishError
from pipelines.publish.tables import conform


def test_conform_checks_columns_and_types() -> None:
    contract = load_contract("customer_rfm")
    with pytest.raises(PublishError, match=r"missing \['first_order_date'"):
        conform(pa.table({"customer_id": ["a"]}), contract)
    good = {c.name: pa.array([None], c.arrow_type) for c in contract.columns}
    good["customer_id"] = pa.array(["a"])
    with pytest.raises(PublishError, match="required but has nulls"):
        conform(pa.table(good), contract)


def test_conform_rejects_a_broken_grain() -> None:
    contract = load_contract("customer_rfm")
    cols = {
        c.name: pa.array([1, 1], c.arrow_type)
        if c.arrow_type != pa.string()
        else pa.array(["a", "a"])
        for c in contract.columns
        if c.arrow_type in (pa.string(), pa.int64(), pa.int32(), pa.float64())
        or c.decimal is not None
    }
    cols["first_order_date"] = pa.array([0, 0], pa.date32())
    cols["last_order_date"] = pa.array([0, 0], pa.date32())
    with pytest.raises(PublishError, match="1 duplicate rows for the key"):
        conform(pa.table(cols), contract)


def _money_contract() -> Contract:
    return Contract(
        name="money",
        version="1",
        description="money columns",
        grain="one row per row",
        columns=(
            Column("amount", "number", "DECIMAL(18,2)", "an amount"),
            Column("mean", "number", "DECIMAL(18,4)", "a mean"),
            Column("share", "number", "DOUBLE", "a ratio"),
        ),
    )


def _half_away(value: float | None, places: int) -> Decimal | None:
    """Independently: the double's shortest decimal form, rounded half away from zero."""
    if value is None:
        return None
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def test_conform_rounds_doubles_to_the_contracts_decimal_half_away_from_zero() -> None:
    # 2.675 and 1.005 are stored just below the tie (2.67499999...): float noise, not data
    values = [2.675, -2.675, 1.005, 0.125, 0.1 + 0.2, 12345.67891, -0.004, None, 1e13 + 0.25]
    out = conform(pa.table({"amount": values, "mean": values, "share": values}), _money_contract())
    assert out.schema.field("amount").type == pa.decimal128(18, 2)
    assert out.schema.field("mean").type == pa.decimal128(18, 4)
    assert out.schema.field("share").type == pa.float64()
    assert out.column("amount").to_pylist() == [_half_away(v, 2) for v in values]
    assert out.column("mean").to_pylist() == [_half_away(v, 4) for v in values]
    assert out.column("amount").to_pylist()[:4] == [
        Decimal("2.68"),
        Decimal("-2.68"),
        Decimal("1.01"),
        Decimal("0.13"),
    ]
    assert out.column("share").to_pylist() == values


def test_conform_rounds_sql_decimals_exactly() -> None:
    sql = duckdb.sql(
        """
        with v as (
            select k, x::decimal(18, 5) as x
            from (values (1, '1.235'), (2, '-1.235'), (3, '1.2349'), (4, '0.00005')) as v(k, x)
        )
        select sum(x) as amount, sum(x) as mean, sum(x) as share from v group by k order by k
        """
    ).to_arrow_table()
    assert sql.schema.field("amount").type == pa.decimal128(38, 5)  # what SQL sums give
    out = conform(sql, _money_contract())
    assert out.column("amount").to_pylist() == [
        Decimal("1.24"),
        Decimal("-1.24"),
        Decimal("1.23"),
        Decimal("0.00"),
    ]
    assert out.column("mean").to_pylist() == [
        Decimal("1.2350"),
        Decimal("-1.2350"),
        Decimal("1.2349"),
        Decimal("0.0001"),
    ]
    assert out.column("share").to_pylist() == [1.235, -1.235, 1.2349, 0.00005]


def test_conform_fails_loudly_on_money_that_does_not_fit() -> None:
    contract = _money_contract()
    ok = {"mean": [1.0], "share": [1.0]}
    with pytest.raises(PublishError, match=r"column 'amount'.*does not fit DECIMAL\(18,2\)"):
        conform(pa.table({"amount": [1e17], **ok}), contract)  # 18 digits before the point
    too_big = duckdb.sql("select 123456789012345678.5::decimal(38, 2) as amount").to_arrow_table()
    with pytest.raises(PublishError, match=r"column 'amount'.*does not fit DECIMAL\(18,2\)"):
        conform(
            too_big.append_column("mean", pa.array([1.0])).append_column("share", [[1.0]]), contract
        )
    with pytest.raises(PublishError, match="1 NaN or infinite value"):
        conform(pa.table({"amount": [float("nan")], **ok}), contract)
    # the largest amount that fits
    edge = conform(pa.table({"amount": [9_999_999_999_999.99], **ok}), contract)
    assert edge.column("amount").to_pylist() == [Decimal("9999999999999.99")]


def test_conform_is_deterministic() -> None:
    """A rerun publishes the same bits: conforming twice, or conforming the output, changes nothing."""
    values = [i / 7 for i in range(-500, 500)] + [None]
    table = pa.table({"amount": values, "mean": values, "share": values})
    once = conform(table, _money_contract())
    assert once.equals(conform(table, _money_contract()))
    assert once.equals(conform(once, _money_contract()))
