"""Synthetic raw orders drawn from the models custval fits, so a fit on them means something.

Each customer is drawn from the BG/NBD story (Fader, Hardie & Lee 2005) with Gamma-Gamma
spend: a purchase rate lambda ~ Gamma(r, alpha), a dropout probability p ~ Beta(a, b) applied
after every purchase, and a spend scale nu ~ Gamma(q, gamma) with order values
z ~ Gamma(p_spend, nu). Customers arrive uniformly over the window.

The simulation is vectorised: for a customer first seen at t0 with window length L, the
Poisson process would give M ~ Poisson(lambda L) repeat purchases, and dropout after the
K-th one with K ~ Geometric(p) - 1, so C = min(K, M) purchases happen. The first C of M
uniform order statistics are drawn directly as partial sums of exponentials over the sum of
M + 1 exponentials (the tail sum being one Gamma(M + 1 - C) draw), so the work is
proportional to the orders kept, not to M.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")

STATUSES = ("completed", "cancelled", "refunded", "returned")
CHANNELS = ("web", "app", "store", "marketplace")


@dataclass(frozen=True)
class GeneratorParams:
    """Population parameters (time unit: days)."""

    r: float = 0.6
    alpha: float = 45.0
    a: float = 0.8
    b: float = 3.0
    spend_p: float = 6.0
    spend_q: float = 4.0
    spend_gamma: float = 15.0
    status_weights: tuple[float, float, float, float] = (0.94, 0.02, 0.025, 0.015)
    channel_weights: tuple[float, float, float, float] = (0.55, 0.25, 0.12, 0.08)
    loyal_channel_share: float = 0.8


def _customers_chunk(
    rng: np.random.Generator, n: int, days: int, params: GeneratorParams
) -> tuple[np.ndarray, np.ndarray]:
    """Purchase times (days from window start) and the customer index within the chunk."""
    t0 = rng.uniform(0.0, days, n)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    window = days - t0
    m = rng.poisson(lam * window)
    k = rng.geometric(np.clip(p, 1e-12, 1.0)) - 1
    c = np.minimum(k, m)

    total = int(c.sum())
    owner = np.repeat(np.arange(n), c)
    block_start = np.cumsum(c) - c
    rank = np.arange(total) - block_start[owner]
    # Partial sums of exponentials within each customer's block: E_1, E_1 + E_2, ...
    e = rng.standard_exponential(total)
    csum = np.cumsum(e)
    before = np.concatenate([[0.0], csum])[block_start]
    partial = csum - before[owner]
    has = c > 0
    s_c = np.zeros(n)
    s_c[has] = partial[block_start[has] + c[has] - 1]
    tail = np.zeros(n)
    tail[has] = rng.gamma((m[has] + 1 - c[has]).astype(float), 1.0)
    u = partial / (s_c[owner] + tail[owner])

    # Lay each customer's orders out contiguously and in time order: t0, then the repeats.
    first_pos = np.arange(n) + block_start
    times = np.empty(n + total)
    who = np.empty(n + total, dtype=np.int64)
    times[first_pos] = t0
    who[first_pos] = np.arange(n)
    repeat_pos = first_pos[owner] + 1 + rank
    times[repeat_pos] = t0[owner] + u * window[owner]
    who[repeat_pos] = owner
    return times, who


def simulate_orders(
    n_orders: int,
    *,
    seed: int = 42,
    start: date = date(2024, 1, 1),
    days: int = 730,
    params: GeneratorParams = GeneratorParams(),
    extra_columns: bool = True,
) -> pl.DataFrame:
    """Exactly `n_orders` orders, sorted by time, deterministic for a seed."""
    if n_orders < 1:
        raise ValueError("the number of orders must be at least 1")
    if days < 1:
        raise ValueError("the number of days must be at least 1")
    rng = np.random.default_rng(seed)
    # Expected orders per customer is a few; draw customers in chunks until there are enough.
    chunk = max(1_000, n_orders // 3)
    times_parts, who_parts = [], []
    have, base = 0, 0
    while have < n_orders:
        times, who = _customers_chunk(rng, chunk, days, params)
        times_parts.append(times)
        who_parts.append(who + base)
        have += len(times)
        base += chunk
    times = np.concatenate(times_parts)
    who = np.concatenate(who_parts)

    # Keep whole customers in order; the last one kept may be cut to its first orders.
    times, who = times[:n_orders], who[:n_orders]
    n_customers = int(who.max()) + 1

    nu = rng.gamma(params.spend_q, 1.0 / params.spend_gamma, n_customers)
    amount = np.round(rng.gamma(params.spend_p, 1.0 / nu[who]), 2)
    status = _categorical(rng, params.status_weights, n_orders)
    home_channel = _categorical(rng, params.channel_weights, n_customers)
    other_channel = _categorical(rng, params.channel_weights, n_orders)
    loyal = rng.random(n_orders) < params.loyal_channel_share
    channel = np.where(loyal, home_channel[who], other_channel)

    by_time = np.argsort(times, kind="stable")
    start_us = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp() * 1e6)
    ts_us = start_us + (times[by_time] * 86_400).astype(np.int64) * 1_000_000
    cust = who[by_time]

    frame = pl.DataFrame(
        {
            "order_id": pl.int_range(1, n_orders + 1, eager=True).cast(pl.String).str.zfill(10),
            "customer_id": pl.Series(cust + 1).cast(pl.String).str.zfill(8),
            "order_ts": pl.Series(ts_us).cast(pl.Datetime("us", "UTC")),
            "amount": amount[by_time],
        }
    ).with_columns(
        ("O" + pl.col("order_id")).alias("order_id"),
        ("C" + pl.col("customer_id")).alias("customer_id"),
        pl.lit("USD").alias("currency"),
    )
    if extra_columns:
        frame = frame.with_columns(
            _labels("status", status[by_time], STATUSES),
            _labels("channel", channel[by_time], CHANNELS),
            (pl.col("customer_id").str.to_lowercase() + "@example.com").alias("email"),
        )
    return frame


def _categorical(rng: np.random.Generator, weights: tuple[float, ...], n: int) -> np.ndarray:
    cumulative = np.cumsum(weights) / np.sum(weights)
    return np.searchsorted(cumulative, rng.random(n), side="right").astype(np.uint32)


def _labels(name: str, codes: np.ndarray, labels: tuple[str, ...]) -> pl.Series:
    return pl.Series(name, codes).replace_strict(dict(enumerate(labels)), return_dtype=pl.String)


CHUNK_ORDERS = 5_000_000  # orders simulated at once by `simulate_order_chunks` (~1 GB)


def simulate_order_chunks(
    n_orders: int,
    *,
    seed: int = 42,
    start: date = date(2024, 1, 1),
    days: int = 730,
    chunk_orders: int = CHUNK_ORDERS,
    extra_columns: bool = True,
) -> Iterator[pl.DataFrame]:
    """`n_orders` orders in frames of at most `chunk_orders`, in bounded memory.

    Up to `chunk_orders` this is `simulate_orders` itself (one frame, the same rows). Beyond,
    each chunk is an independent population of customers (seed `seed`, `seed + 1`, ...) whose
    order and customer numbers continue the previous chunk's, so ids stay unique; each chunk
    is sorted by time, the file as a whole is not (an export in blocks, as large dumps are).
    """
    if n_orders <= chunk_orders:
        yield simulate_orders(
            n_orders, seed=seed, start=start, days=days, extra_columns=extra_columns
        )
        return
    orders_before, customers_before = 0, 0
    for i, size in enumerate(_chunk_sizes(n_orders, chunk_orders)):
        frame = simulate_orders(
            size, seed=seed + i, start=start, days=days, extra_columns=extra_columns
        )
        order_no = pl.col("order_id").str.slice(1).cast(pl.Int64) + orders_before
        customer_no = pl.col("customer_id").str.slice(1).cast(pl.Int64) + customers_before
        customers = frame.select(pl.col("customer_id").str.slice(1).cast(pl.Int64).max()).item()
        frame = frame.with_columns(
            ("O" + order_no.cast(pl.String).str.zfill(10)).alias("order_id"),
            ("C" + customer_no.cast(pl.String).str.zfill(8)).alias("customer_id"),
        )
        if extra_columns:
            frame = frame.with_columns(
                (pl.col("customer_id").str.to_lowercase() + "@example.com").alias("email")
            )
        orders_before += size
        customers_before += customers
        yield frame


def _chunk_sizes(total: int, chunk: int) -> list[int]:
    return [min(chunk, total - offset) for offset in range(0, total, chunk)]


def write_orders(frame: pl.DataFrame, out: Path, fmt: Format) -> Path:
    """Write raw orders as a source system would: text timestamps in CSV and JSON Lines."""
    return write_order_chunks([frame], out, fmt)


def write_order_chunks(
    frames: Iterator[pl.DataFrame] | list[pl.DataFrame], out: Path, fmt: Format
) -> Path:
    """Write frames of raw orders one after another into one file (one frame in memory at a time)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        writer: pq.ParquetWriter | None = None
        try:
            for frame in frames:
                table = frame.to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(out, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=1_000_000)
        finally:
            if writer is not None:
                writer.close()
        return out
    with open(out, "wb") as fh:
        for i, frame in enumerate(frames):
            text = frame.with_columns(
                pl.col("order_ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                _money_text(pl.col("amount")).alias("amount"),
            )
            if fmt == "csv":
                text.write_csv(fh, include_header=i == 0)
            else:
                text.write_ndjson(fh)
    return out


def _money_text(amount: pl.Expr) -> pl.Expr:
    """Two decimals (`12.50`), as source systems write money."""
    cents = (amount * 100).round().cast(pl.Int64)
    sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = (cents.abs() // 100).cast(pl.String)
    frac = (cents.abs() % 100).cast(pl.String).str.zfill(2)
    return pl.concat_str([sign, whole, pl.lit("."), frac])


def format_from_path(path: Path) -> Format | None:
    suffixes = [s.lower() for s in path.suffixes]
    for fmt, exts in (
        ("csv", {".csv"}),
        ("parquet", {".parquet"}),
        ("jsonl", {".jsonl", ".ndjson"}),
    ):
        if exts & set(suffixes):
            return fmt  # type: ignore[return-value]
    return None
