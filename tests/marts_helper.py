"""Build every SQL model from hand-written orders, without the extract/validate stages."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from pipelines.config import load_config
from pipelines.contracts import load_contract
from pipelines.transform.marts import build_snapshot, connect, load_models


def staged_frame(rows: list[dict]) -> pl.DataFrame:
    """Orders as the stage step leaves them: contract columns without PII, fx_rate, *_hmac."""
    contract = load_contract("orders")
    schema = {c.name: c.polars_type for c in contract.columns if not c.pii}
    schema |= {
        "fx_rate": pl.Float64,
        "email_hmac": pl.String,
        "phone_hmac": pl.String,
        "name_hmac": pl.String,
    }
    filled = []
    for i, row in enumerate(rows):
        r = {"order_id": f"O{i}", "currency": "USD", "status": "completed", "fx_rate": 1.0, **row}
        ts = r["order_ts"]
        if isinstance(ts, date) and not isinstance(ts, datetime):
            r["order_ts"] = datetime(ts.year, ts.month, ts.day, 12, tzinfo=UTC)
        filled.append({k: r.get(k) for k in schema})
    return pl.DataFrame(filled, schema=schema, orient="row")


NO_PREDICTIONS = "predictive:\n  enabled: false\n"  # a handful of customers cannot be fitted


def build_tables(
    rows: list[dict], snapshot: date, config: str | None = None
) -> dict[str, pl.DataFrame]:
    """Every published table; predictions are off unless `config` has a predictive section."""
    text = config or ""
    if "predictive:" not in text:
        text += NO_PREDICTIONS
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "config.yaml"
        cfg_path.write_text(text)
        cfg = load_config(cfg_path)
    con = connect()
    try:
        models = load_models()
        build_snapshot(con, cfg, snapshot, staged_frame(rows), models)
        return {
            m.published_name: con.sql(f"select * from {m.name}").pl()
            for m in models.values()
            if m.published_name
        }
    finally:
        con.close()
