"""`custval generate`, `demo`, `bench` and `docs`: sample data, a guided first run, timings."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from pipelines.cli.app import app, console, fail, parse_date_option
from pipelines.cli.runs import run_context, run_snapshot

if TYPE_CHECKING:
    import polars as pl


@app.command()
def generate(
    orders: Annotated[
        int, typer.Option("--orders", "-n", help="Number of orders to write.", min=1)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file (.csv, .parquet or .jsonl).")
    ],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 42,
    start: Annotated[
        str, typer.Option(help="First day of the order history (YYYY-MM-DD).")
    ] = "2024-01-01",
    days: Annotated[int, typer.Option(help="Length of the order history in days.", min=1)] = 730,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv, parquet or jsonl (default: from the file suffix)."),
    ] = None,
    minimal: Annotated[
        bool, typer.Option(help="Only the required columns (no status, channel, email).")
    ] = False,
) -> None:
    """Write realistic synthetic raw orders (BG/NBD purchase process, Gamma-Gamma spend).

    Large files are simulated and written in chunks of 5M orders, so memory stays bounded.
    """
    from pipelines.tools.generate import (
        FORMATS,
        format_from_path,
        simulate_order_chunks,
        write_order_chunks,
    )

    start_date = parse_date_option(start, "--start")
    assert start_date is not None
    chosen = fmt or format_from_path(out) or "csv"
    if chosen not in FORMATS:
        fail(f"unknown --format {chosen!r}; use one of {', '.join(FORMATS)}", 2)
    t0 = time.perf_counter()
    customers, last = 0, datetime.min.replace(tzinfo=UTC)

    def chunks() -> Iterator[pl.DataFrame]:
        nonlocal customers, last
        for frame in simulate_order_chunks(
            orders, seed=seed, start=start_date, days=days, extra_columns=not minimal
        ):
            customers += frame["customer_id"].n_unique()  # chunks never share a customer
            last = max(last, cast(datetime, frame["order_ts"].max()))
            yield frame

    with console.status(f"simulating and writing {orders:,} orders to {out} ..."):
        write_order_chunks(chunks(), out, chosen)  # type: ignore[arg-type]
    console.print(
        f"wrote {orders:,} orders of {customers:,} customers to {out} ({chosen}) "
        f"in {time.perf_counter() - t0:.1f} s; last day {last:%Y-%m-%d}"
    )


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to put the sample and the warehouse.")
    ] = Path("demo"),
    orders: Annotated[int, typer.Option(help="Orders in the sample.", min=100)] = 50_000,
) -> None:
    """Generate a sample into ./demo/, run the pipeline for its last day, and summarise."""
    import polars as pl

    from pipelines.tools.generate import simulate_orders, write_orders

    source = directory / "orders.csv"
    warehouse = directory / "warehouse"
    with console.status(f"generating {orders:,} sample orders into {source} ..."):
        frame = simulate_orders(orders, seed=7)
        write_orders(frame, source, "csv")
    last_day = frame["order_ts"].max().date()  # type: ignore[union-attr]
    console.print(
        f"sample: {orders:,} orders, {frame['customer_id'].n_unique():,} customers, up to {last_day}"
    )
    manifest = run_snapshot(run_context(str(source), last_day, warehouse, None))

    rfm = pl.read_parquet(Path(manifest["tables"]["customer_rfm"]["path"]))
    clv = pl.read_parquet(Path(manifest["tables"]["customer_clv"]["path"]))
    by_segment = (
        rfm.group_by("rfm_segment")
        .agg(pl.len().alias("customers"), pl.col("monetary_total").sum().alias("revenue"))
        .sort("revenue", descending=True)
    )
    total = by_segment["revenue"].sum()
    table = Table(title="Customers per RFM segment")
    for col, justify in (
        ("segment", "left"),
        ("customers", "right"),
        ("revenue", "right"),
        ("share", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for seg, n, revenue in by_segment.iter_rows():
        table.add_row(seg, f"{n:,}", f"{revenue:,.0f}", f"{revenue / total:.0%}")
    console.print(table)
    top = (
        rfm.join(clv.select("customer_id", "clv_retention"), on="customer_id")
        .sort(["monetary_total", "customer_id"], descending=[True, False])
        .head(5)
    )
    table = Table(title="Top customers by net revenue")
    for col in ("customer", "orders", "revenue", "CLV", "segment", "stage", "tier"):
        table.add_column(col)
    for r in top.iter_rows(named=True):
        value = r["clv_retention"]
        table.add_row(
            r["customer_id"],
            str(r["order_count"]),
            f"{r['monetary_total']:,.0f}",
            "-" if value is None else f"{value:,.0f}",
            r["rfm_segment"],
            r["lifecycle_stage"],
            r["loyalty_tier"],
        )
    console.print(table)
    funnel = pl.read_parquet(Path(manifest["tables"]["journey_summary"]["path"])).row(0, named=True)
    rate = funnel["repeat_conversion_rate"]
    came_back = (
        f"; {rate:.0%} of buyers came back within {funnel['repeat_window_days']} days"
        if rate is not None
        else ""
    )
    console.print(
        f"journey:   {funnel['one_time_customers']:,} one-time -> {funnel['repeat_customers']:,}"
        f" repeat -> {funnel['high_value_customers']:,} high-value{came_back}"
    )
    console.print(f"tables:    {warehouse / 'marts'} ({', '.join(sorted(manifest['tables']))})")
    console.print(f"manifest:  {manifest['manifest_path']}")
    console.print(f"quality:   {manifest['validation']['docs_index']}")
    console.print(
        f"try:       duckdb -c \"select * from '{warehouse}/marts/customer_rfm/*/*.parquet' limit 5\""
    )
    if manifest.get("report_path"):  # last: the page to open
        console.print(f"report:    {manifest['report_path']}", soft_wrap=True, markup=False)


@app.command()
def bench(
    orders: Annotated[
        int, typer.Option("--orders", "-n", help="Orders to generate.", min=1)
    ] = 1_000_000,
    fmt: Annotated[
        str, typer.Option("--format", help="Source format: parquet, csv or jsonl.")
    ] = "parquet",
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Directory for the data; the generated file is kept there and reused "
            "(default: a temp dir, removed after)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    rounds: Annotated[
        int,
        typer.Option(help="Alternating rounds of the baseline and custval run; medians.", min=1),
    ] = 1,
    config: Annotated[
        Path | None, typer.Option(help="Config file for the custval run (its resources).")
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(help="Run custval sharded by customer into K shards (`run --shards`).", min=1),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes running the shards (`run --workers`).", min=1),
    ] = None,
) -> None:
    """Generate N orders, run the pipeline and a bare DuckDB summary query on the same file,
    alternately; print seconds and peak memory per stage and the ratio of their wall times."""
    import json
    import shutil
    import tempfile

    from pipelines.memory import measure
    from pipelines.tools.bench import compare
    from pipelines.tools.generate import FORMATS, simulate_order_chunks, write_order_chunks

    if fmt not in FORMATS:
        fail(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}", 2)
    base = workdir or Path(tempfile.mkdtemp(prefix="custval-bench-"))
    try:
        base.mkdir(parents=True, exist_ok=True)
        source = base / f"orders-{orders}-{seed}.{fmt}"
        last_day_file = source.with_name(source.name + ".last_day")
        with measure() as gen:
            if not (source.is_file() and last_day_file.is_file()):
                last = datetime.min.replace(tzinfo=UTC)

                def chunks() -> Iterator[pl.DataFrame]:
                    nonlocal last
                    for frame in simulate_order_chunks(orders, seed=seed):
                        last = max(last, cast(datetime, frame["order_ts"].max()))
                        yield frame

                with console.status(f"generating {orders:,} orders into {source} ..."):
                    partial = source.with_name(source.name + ".partial")
                    write_order_chunks(chunks(), partial, fmt)  # type: ignore[arg-type]
                    partial.replace(source)
                    last_day_file.write_text(f"{last:%Y-%m-%d}")
        snapshot = last_day_file.read_text().strip()
        warehouse = base / "warehouse"
        with console.status("benchmarking ...") as status:
            result = compare(
                source, snapshot, warehouse, rounds, config, status.update, shards, workers
            )
        cores = os.cpu_count()
        table = Table(title=f"custval bench: {orders:,} orders ({fmt}), {cores} cores")
        for col in ("stage", "seconds", "peak RSS MB"):
            table.add_column(col, justify="right")
        table.add_row("generate", f"{gen.seconds:.2f}", f"{gen.peak_rss_mb:,.0f}")
        for name, m in result["stages"].items():
            table.add_row(name, f"{m['seconds']:.2f}", f"{m['peak_rss_mb']:,.0f}")
        mine, bare = result["custval"], result["baseline"]
        table.add_row(
            "custval run (process)", f"{mine['wall_seconds']:.2f}", f"{mine['peak_rss_mb']:,.0f}"
        )
        table.add_row(
            "bare DuckDB summary", f"{bare['wall_seconds']:.2f}", f"{bare['peak_rss_mb']:,.0f}"
        )
        console.print(table)
        if result.get("sharding"):
            console.print(_sharding_table(result["sharding"]))
        console.print(
            f"ratio: custval run takes {result['wall_ratio']:.1f}x the wall time of the bare DuckDB "
            f"summary query on the same file (median of {rounds} alternating round(s), "
            f"load average {result['load_average'][0]:.2f})"
        )
        if result.get("memory_limit"):
            console.print(
                f"memory: peak RSS {mine['peak_rss_mb']:,.0f} MB within a budget of "
                f"{result['memory_limit']} (resources.memory_limit; DuckDB's share "
                f"{result.get('duckdb_share')})"
            )
        # one machine-readable line last (not wrapped), for scripts that keep benchmark records
        sys.stdout.write(
            json.dumps(
                {"orders": orders, "format": fmt, "cores": cores, "generate": gen.as_dict()}
                | result
            )
            + "\n"
        )
    except RuntimeError as exc:
        fail(str(exc), 1)
    finally:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)


def _sharding_table(sharding: dict[str, Any]) -> Table:
    """The marts stage of a sharded run: the split, each phase, then each worker process."""
    table = Table(title=f"sharded marts: {sharding['shards']} shards")
    for col in ("step", "models", "seconds", "peak RSS MB"):
        table.add_column(col, justify="right")
    split = sharding.get("split") or {}
    table.add_row(
        "split", "", f"{split.get('seconds', 0):.2f}", f"{split.get('peak_rss_mb', 0):,.0f}"
    )
    for i, phase in enumerate(sharding["phases"]):
        parts = phase.get("parts") or []
        peak = max((p["peak_rss_mb"] for p in parts), default=phase.get("peak_rss_mb", 0))
        where = f"{len(parts)} parts, max per worker" if parts else "main process"
        table.add_row(
            f"{i}: {phase['kind']} ({where})",
            str(phase["models"]),
            f"{phase.get('seconds', 0):.2f}",
            f"{peak:,.0f}",
        )
    for w in sharding.get("workers", []):
        table.add_row(
            f"worker {w['worker']}: {w['parts']} parts",
            "",
            f"{w['seconds']:.2f}",
            f"{w['peak_rss_mb']:,.0f}",
        )
    return table


@app.command()
def docs(
    out: Annotated[Path, typer.Option(help="Where to write the data dictionary.")] = Path(
        "docs/data_dictionary.md"
    ),
) -> None:
    """Regenerate the data dictionary from the data contracts."""
    from pipelines.tools.dictionary import write

    console.print(f"wrote {write(out)}")
