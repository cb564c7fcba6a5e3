"""No PII value appears in clear in anything published: tables, manifests, validation docs."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from pipelines.contracts import all_contracts
from pipelines.generate import simulate_orders, write_orders

RESTRICTED = ("raw", "quarantine", "_work")  # zones that hold source data as received


def published_text(warehouse: Path) -> str:
    """Every string in every published file: Parquet values and metadata, JSON, HTML."""
    chunks: list[str] = []
    for path in warehouse.rglob("*"):
        if not path.is_file() or path.relative_to(warehouse).parts[0] in RESTRICTED:
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            chunks.append(str(table.schema.metadata))
            for column in table.columns:
                if str(column.type) in ("string", "large_string"):
                    chunks.extend(v for v in column.to_pylist() if v is not None)
        elif path.suffix in (".json", ".html", ".md", ".txt", ".csv"):
            chunks.append(path.read_text(errors="replace"))
    return "\n".join(chunks)


@pytest.fixture
def source_with_pii(tmp_path: Path) -> tuple[Path, list[str]]:
    frame = simulate_orders(2_000, seed=4).with_columns(
        (pl.lit("Person ") + pl.col("customer_id")).alias("name"),
        (pl.lit("+1 555 ") + pl.col("customer_id").str.slice(1)).alias("phone"),
    )
    path = write_orders(frame, tmp_path / "src" / "orders.csv", "csv")
    values = frame["email"].unique().to_list() + frame["name"].unique().to_list() + frame["phone"].unique().to_list()
    return path, values


def test_no_published_contract_has_pii_columns() -> None:
    for name, contract in all_contracts().items():
        if name != "orders":
            assert not contract.pii_columns, name


@pytest.mark.parametrize("hashed", [False, True])
def test_no_pii_in_published_files(
    source_with_pii, run_pipeline: Callable[..., dict], tmp_path: Path, monkeypatch, hashed: bool
) -> None:
    source, values = source_with_pii
    config = None
    if hashed:
        config = tmp_path / "cfg.yaml"
        config.write_text("privacy:\n  hashed_columns: [email]\n")
        monkeypatch.setenv("CUSTVAL_HMAC_KEY", "test-key-0123456789")
    wh = tmp_path / "wh"
    manifest = run_pipeline(source, "2025-12-30", warehouse=wh, config=config)
    text = published_text(wh)
    assert manifest["counts"]["rows_accepted"] == 2_000
    leaked = [v for v in values if v in text]
    assert leaked == []
    assert "example.com" not in text
    # The raw zone does hold them (it is the landed source), which shows the scan can find them.
    raw = pl.read_parquet(next((wh / "raw").rglob("*.parquet")))
    assert set(values[:5]) <= set(raw["email"].to_list() + raw["name"].to_list() + raw["phone"].to_list())
    rfm = pl.read_parquet(Path(manifest["tables"]["customer_rfm"]["path"]))
    if hashed:  # the published key is the HMAC of the normalised address, computed independently
        orders = pl.read_csv(source)
        latest = orders.sort("order_ts").group_by("customer_id").agg(pl.col("email").last())
        expected = {
            c: hmac.new(b"test-key-0123456789", e.strip().lower().encode(), hashlib.sha256).hexdigest()
            for c, e in latest.iter_rows()
        }
        got = dict(zip(rfm["customer_id"].to_list(), rfm["email_hmac"].to_list()))
        assert got == {c: expected[c] for c in got}
    else:
        assert rfm["email_hmac"].null_count() == rfm.height
