"""Small reference tables the config points at (FX rates, marketing spend), checked strictly.

They go through the same readers and contract-driven parsing as orders, but a bad row is an
error, not a quarantine: a wrong exchange rate would silently corrupt every amount.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.contracts import load_contract
from pipelines.errors import SourceError
from pipelines.extract.readers import read_raw
from pipelines.validate.parse import RULES, parse_batch


def load_reference(name: str, path: str | Path) -> pl.DataFrame:
    """The table `path` typed by the contract `data_contracts/<name>.yaml`; raises on any bad row."""
    contract = load_contract(name)
    raw = read_raw(Path(path), contract.column_names)
    missing = [c for c in contract.required_columns if c not in raw.columns]
    if missing:
        raise SourceError(f"{path}: {name} needs column(s) {', '.join(missing)}")
    parsed = parse_batch(
        raw.frame.with_row_index("_row"), contract, check_columns=contract.column_names
    )
    if parsed.failures.height:
        bad = parsed.failures.join(raw.frame.with_row_index("_row"), on="_row").head(3)
        where = "; ".join(
            f"line {r['_source_line']}: {', '.join(r[RULES])}" for r in bad.iter_rows(named=True)
        )
        raise SourceError(f"{path}: {parsed.failures.height} bad {name} row(s) ({where})")
    typed = parsed.typed.drop("_row")
    key = contract.primary_key
    if key and typed.select(key).is_duplicated().any():
        raise SourceError(f"{path}: {name} has more than one row for the same {', '.join(key)}")
    return typed


def fx_rates(path: str | Path | None, reporting_currency: str) -> pl.DataFrame:
    """currency -> rate, always including the reporting currency at 1."""
    own = pl.DataFrame({"currency": [reporting_currency], "rate": [1.0]})
    if path is None:
        return own
    rates = load_reference("fx_rates", path).filter(pl.col("currency") != reporting_currency)
    return pl.concat([own, rates])


def marketing_spend(path: str | Path | None) -> pl.DataFrame:
    if path is None:
        return pl.DataFrame(schema={"month": pl.Date, "channel": pl.String, "spend": pl.Float64})
    spend = load_reference("marketing_spend", path).with_columns(
        pl.col("month").dt.month_start(), pl.col("channel").str.strip_chars().str.to_lowercase()
    )
    if spend.select("month", "channel").is_duplicated().any():
        raise SourceError(
            f"{path}: marketing_spend has more than one row for the same month and channel"
        )
    return spend
