"""Published tables conform to their contracts: columns, types, required values, grain."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.contracts import load_contract
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
    }
    cols["first_order_date"] = pa.array([0, 0], pa.date32())
    cols["last_order_date"] = pa.array([0, 0], pa.date32())
    with pytest.raises(PublishError, match="1 duplicate rows for the key"):
        conform(pa.table(cols), contract)
