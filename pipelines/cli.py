"""The `custval` command line: generate, run, demo, bench.

Errors a user can act on print as one line (`error: ...`) with a non-zero exit code; a full
traceback only appears with `--debug`.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from pipelines.errors import CustvalError

app = typer.Typer(
    name="custval",
    help="Raw orders in, customer-value tables out (RFM, ABC, lifecycle, cohorts, CLV) as Parquet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
_DEBUG = {"on": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
) -> None:
    _DEBUG["on"] = debug
    _log_warnings_to_stderr()


def _log_warnings_to_stderr() -> None:
    """The pipeline's warnings (a dead run's lease taken over, a repair) as `warning:` lines."""
    logger = logging.getLogger("custval")
    if not any(getattr(h, "_custval_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.setLevel(logging.WARNING)
        handler._custval_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _date(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"invalid {what} {value!r}: expected YYYY-MM-DD", 2)
    return None


# ------------------------------------------------------------------------------------------
# generate


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
    """Write realistic synthetic raw orders (BG/NBD purchase process, Gamma-Gamma spend)."""
    from pipelines.tools.generate import FORMATS, format_from_path, simulate_orders, write_orders

    start_date = _date(start, "--start")
    assert start_date is not None
    chosen = fmt or format_from_path(out) or "csv"
    if chosen not in FORMATS:
        _fail(f"unknown --format {chosen!r}; use one of {', '.join(FORMATS)}", 2)
    t0 = time.perf_counter()
    with console.status(f"simulating {orders:,} orders ..."):
        frame = simulate_orders(
            orders, seed=seed, start=start_date, days=days, extra_columns=not minimal
        )
    with console.status(f"writing {out} ..."):
        write_orders(frame, out, chosen)  # type: ignore[arg-type]
    customers = frame["customer_id"].n_unique()
    console.print(
        f"wrote {orders:,} orders of {customers:,} customers to {out} ({chosen}) "
        f"in {time.perf_counter() - t0:.1f} s; last day {cast(datetime, frame['order_ts'].max()):%Y-%m-%d}"
    )


# ------------------------------------------------------------------------------------------
# run


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _stage_line(name: str, result: dict[str, Any]) -> str:
    if name == "extract":
        return f"{_plural(result['rows_in'], 'row')} from {_plural(len(result['files']), 'file')}"
    if name == "validate":
        c = result["counts"]
        return f"{c['rows_accepted']:,} accepted · {c['rows_quarantined']:,} quarantined · {c['rows_duplicate']:,} duplicate"
    if name == "extract" and result.get("reused"):
        return f"{_plural(result['rows_in'], 'row')} already ingested for this date (reused)"
    if name == "stage":
        return f"{result['rows_in_snapshot']:,} orders in the snapshot ({result['rows_after_snapshot']:,} later)"
    if name == "marts":
        return ", ".join(f"{t} {_plural(v['rows'], 'row')}" for t, v in result["tables"].items())
    if name == "publish":
        return f"{_plural(len(result['tables']), 'table')}" + (
            " + quarantine" if result.get("quarantine") else ""
        )
    if name == "manifest":
        return result["manifest_path"]
    return ""


def _context(
    source: str,
    as_of: date,
    warehouse: Path,
    config: Path | None,
    source_kind: str = "auto",
    table: str | None = None,
    reingest: bool = False,
    allow_partial_day: bool = False,
) -> Any:
    from pipelines.context import RunContext

    return RunContext.create(
        source=source,
        snapshot_date=as_of,
        warehouse=warehouse,
        config_path=str(config) if config else None,
        source_kind=source_kind,
        table=table,
        reingest=reingest,
        allow_partial_day=allow_partial_day,
    )


def _seconds(value: float, what: str) -> float:
    if value != value or value < 0 or value == float("inf"):
        _fail(f"invalid {what} {value}: give a number of seconds >= 0", 2)
    return value


def run_snapshot(ctx: Any, quiet: bool = False, wait_seconds: float = 0) -> dict[str, Any]:
    """Run the pipeline for one snapshot with a live line per stage."""
    from pipelines.run.pipeline import run_all

    if not quiet:
        console.print(
            f"[bold]custval run[/] snapshot {ctx.snapshot_date} · source {ctx.source_spec.display} → {ctx.warehouse}"
        )
    started: dict[str, float] = {}
    status = None if quiet else console.status("starting ...")

    def on_start(name: str, _ctx: Any) -> None:
        started[name] = time.perf_counter()
        if status is not None:
            status.update(f"{name} ...")

    def on_end(name: str, stage_ctx: Any, result: dict[str, Any]) -> None:
        if quiet:
            return
        seconds = time.perf_counter() - started.get(name, time.perf_counter())
        prefix = (
            ""
            if stage_ctx.snapshot_date == ctx.snapshot_date
            else f"[{stage_ctx.snapshot_date} rebuilt] "
        )
        timing = f"  [dim]{seconds:.1f} s[/]" if name in started and not prefix else ""
        console.print(
            f" [green]✓[/] {prefix}{name:<9} {_stage_line(name, result)}{timing}", soft_wrap=True
        )

    if status is not None:
        status.start()
    try:
        manifest = run_all(
            ctx, on_stage_start=on_start, on_stage_end=on_end, wait_seconds=wait_seconds
        )
    finally:
        if status is not None:
            status.stop()
    if not quiet:
        for line in manifest.get("warnings", []):
            err_console.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
        if manifest.get("late_batches"):
            console.print(
                f" [green]✓[/] ingested late batches of {', '.join(manifest['late_batches'])}"
            )
    return manifest


SourceKindOption = Annotated[
    str, typer.Option("--source-kind", help="auto, files, landing or postgres.")
]
TableOption = Annotated[
    str | None, typer.Option(help="PostgreSQL table or view to read (with a postgresql:// source).")
]
AllowPartialOption = Annotated[
    bool,
    typer.Option(
        help="Build a snapshot of a day that has not ended yet (today, UTC); by default only ended days are built."
    ),
]


@app.command()
def run(
    source: Annotated[
        str,
        typer.Option(
            help="Files (a file, directory or glob of CSV/Parquet/JSON Lines), a landing directory of date=YYYY-MM-DD folders, or postgresql://user@host:port/db."
        ),
    ],
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of", help="Snapshot date YYYY-MM-DD: orders up to the end of this day (UTC)."
        ),
    ],
    warehouse: Annotated[
        Path, typer.Option(help="Warehouse directory the tables are published into.")
    ],
    config: Annotated[
        Path | None, typer.Option(help="YAML file overriding the default configuration.")
    ] = None,
    source_kind: SourceKindOption = "auto",
    table: TableOption = None,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to wait when another run holds the snapshot, or the day before it is not built yet (default: fail at once)."
        ),
    ] = 0,
    reingest: Annotated[
        bool,
        typer.Option(
            help="Read an incremental source's batch for this date again instead of reusing the one already landed."
        ),
    ] = False,
    allow_partial_day: AllowPartialOption = False,
) -> None:
    """Run the whole pipeline for one snapshot date."""
    snapshot = _date(as_of, "--as-of")
    assert snapshot is not None
    wait = _seconds(wait, "--wait")
    if config is not None and not config.is_file():
        _fail(f"config file not found: {config}", 2)
    ctx = _context(
        source, snapshot, warehouse, config, source_kind, table, reingest, allow_partial_day
    )
    run_snapshot(ctx, wait_seconds=wait)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First snapshot date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last snapshot date (YYYY-MM-DD), included.")],
    source: Annotated[
        str, typer.Option(envvar="CUSTVAL_SOURCE", help="As for `run` (default: $CUSTVAL_SOURCE).")
    ],
    warehouse: Annotated[
        Path,
        typer.Option(
            envvar="CUSTVAL_WAREHOUSE", help="As for `run` (default: $CUSTVAL_WAREHOUSE)."
        ),
    ],
    config: Annotated[
        Path | None, typer.Option(help="YAML file overriding the default configuration.")
    ] = None,
    source_kind: SourceKindOption = "auto",
    table: TableOption = None,
    keep_going: Annotated[
        bool, typer.Option(help="Go on with the next date after a failed one.")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to wait, per date, for another run holding a snapshot (e.g. a second backfill)."
        ),
    ] = 0,
    allow_partial_day: AllowPartialOption = False,
) -> None:
    """Run the snapshots START..END in order -- the same runs as the nightly ones."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.run.pipeline import run_dates

    first, last = _date(start, "--start"), _date(end, "--end")
    assert first is not None and last is not None
    if last < first:
        _fail(f"--end {last} is before --start {first}", 2)
    wait = _seconds(wait, "--wait")
    if config is not None and not config.is_file():
        _fail(f"config file not found: {config}", 2)
    total = (last - first).days + 1
    failures = 0
    with Progress(
        TextColumn("backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("dates", total=total)

        def on_date(
            day: date, manifest: dict[str, Any] | None, error: BaseException | None
        ) -> None:
            nonlocal failures
            if error is None and manifest is not None:
                c = manifest["counts"]
                rebuilt = manifest.get("rebuilt_snapshots") or []
                extra = f" · rebuilt {', '.join(rebuilt)}" if rebuilt else ""
                bar.console.print(
                    f" [green]✓[/] {day}  {c['rows_in']:,} in · {c['rows_accepted']:,} accepted · "
                    f"{c['rows_quarantined']:,} quarantined · {c['rows_duplicate']:,} duplicate · "
                    f"{manifest['tables']['customer_rfm']['rows']:,} customers{extra}",
                    soft_wrap=True,
                )
            else:
                failures += 1
                assert error is not None
                text = (
                    custval_error_line(error)
                    if isinstance(error, CustvalError)
                    else failure_line(error)
                )
                bar.console.print(f" [red]✗[/] {day}  {text}", soft_wrap=True)
            bar.advance(task)

        run_dates(
            lambda day: _context(
                source,
                day,
                warehouse,
                config,
                source_kind,
                table,
                allow_partial_day=allow_partial_day,
            ),
            first,
            last,
            on_date,
            stop_on_error=not keep_going,
            wait_seconds=wait,
        )
    if failures:
        _fail(f"{failures} of {total} dates failed", 1)


@app.command()
def unlock(
    as_of: Annotated[str, typer.Option("--as-of", help="The snapshot date whose lease to remove.")],
    warehouse: Annotated[Path, typer.Option(help="Warehouse directory.")],
    force: Annotated[
        bool,
        typer.Option(
            help="Remove the lease even if its run looks alive, or the file is unreadable."
        ),
    ] = False,
) -> None:
    """Remove a snapshot's lease left by a run that died (a dead run's lease is also taken over by itself)."""
    from pipelines.context import check_warehouse
    from pipelines.storage import locking
    from pipelines.storage.recovery import recover_warehouse

    snapshot = _date(as_of, "--as-of")
    assert snapshot is not None
    root = check_warehouse(warehouse)
    console.print(locking.unlock(root, snapshot, force=force))
    recover_warehouse(root)


# ------------------------------------------------------------------------------------------
# demo


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
    manifest = run_snapshot(_context(str(source), last_day, warehouse, None))

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
    console.print(f"tables:    {warehouse / 'marts'} ({', '.join(sorted(manifest['tables']))})")
    console.print(f"manifest:  {manifest['manifest_path']}")
    console.print(f"quality:   {manifest['validation']['docs_index']}")
    console.print(
        f"try:       duckdb -c \"select * from '{warehouse}/marts/customer_rfm/*/*.parquet' limit 5\""
    )


# ------------------------------------------------------------------------------------------
# bench


@app.command()
def bench(
    orders: Annotated[
        int, typer.Option("--orders", "-n", help="Orders to generate.", min=1)
    ] = 1_000_000,
    fmt: Annotated[
        str, typer.Option("--format", help="Source format: csv, parquet or jsonl.")
    ] = "csv",
    workdir: Annotated[
        Path | None,
        typer.Option(help="Directory for the data (default: a temp dir, removed after)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Generate N orders, run the pipeline, print seconds and peak memory per stage."""
    import json
    import shutil
    import tempfile

    from pipelines.run.metrics import measure
    from pipelines.tools.generate import simulate_orders, write_orders

    base = workdir or Path(tempfile.mkdtemp(prefix="custval-bench-"))
    try:
        source = base / f"orders.{fmt}"
        with console.status(f"generating {orders:,} orders ..."), measure() as gen:
            frame = simulate_orders(orders, seed=seed)
            last_day = frame["order_ts"].max().date()  # type: ignore[union-attr]
            write_orders(frame, source, fmt)  # type: ignore[arg-type]
            del frame
        manifest = run_snapshot(_context(str(source), last_day, base / "warehouse", None))
        table = Table(title=f"custval bench: {orders:,} orders ({fmt}), {os.cpu_count()} cores")
        for col in ("stage", "seconds", "peak RSS MB"):
            table.add_column(col, justify="right")
        table.add_row("generate", f"{gen.seconds:.2f}", f"{gen.peak_rss_mb:,.0f}")
        total = 0.0
        for name, m in manifest["stages"].items():
            table.add_row(name, f"{m['seconds']:.2f}", f"{m['peak_rss_mb']:,.0f}")
            total += m["seconds"]
        table.add_row("pipeline total", f"{total:.2f}", "")
        console.print(table)
        # one machine-readable line last (not wrapped), for scripts that keep benchmark records
        sys.stdout.write(
            json.dumps(
                {
                    "orders": orders,
                    "format": fmt,
                    "cores": os.cpu_count(),
                    "generate": gen.as_dict(),
                    "stages": manifest["stages"],
                    "counts": manifest["counts"],
                }
            )
            + "\n"
        )
    finally:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# docs


@app.command()
def docs(
    out: Annotated[Path, typer.Option(help="Where to write the data dictionary.")] = Path(
        "docs/data_dictionary.md"
    ),
) -> None:
    """Regenerate the data dictionary from the data contracts."""
    from pipelines.tools.dictionary import write

    console.print(f"wrote {write(out)}")


_DISK_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, or choose another --warehouse",
    errno.EDQUOT: "the disk quota is exhausted: free some space, or choose another --warehouse",
    errno.EROFS: "the filesystem is read-only: choose a writable --warehouse",
    errno.EACCES: "permission denied: check the directory's owner and mode, or choose another --warehouse",
    errno.EPERM: "operation not permitted: check the directory's owner and mode",
}


_MESSAGE_HINTS = {
    "No space left on device": errno.ENOSPC,
    "Read-only file system": errno.EROFS,
    "Disk quota exceeded": errno.EDQUOT,
}


def os_error_line(exc: OSError) -> str:
    """One line for a failed file operation: which file, what happened, what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    hint = _DISK_HINTS.get(exc.errno or 0)
    return f"{where}{exc.strerror or exc}" + (
        f" ({hint}); nothing was published by this run" if hint else ""
    )


def custval_error_line(exc: BaseException) -> str:
    """Our own errors as one line, with what to do about a full or read-only disk added."""
    text = " ".join(str(exc).split())
    for marker, code in _MESSAGE_HINTS.items():
        if marker in text and _DISK_HINTS[code] not in text:
            return f"{text} ({_DISK_HINTS[code]})"
    return text


def failure_line(exc: BaseException) -> str:
    """One line for any failure. Libraries (Polars, DuckDB, GX) report a full disk in their own
    exception types; the message still says what happened and what to do."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os_error_line(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    for marker, code in _MESSAGE_HINTS.items():
        if marker in text:
            return f"{text[:400]} ({_DISK_HINTS[code]}); nothing was published by this run"
    return f"{type(exc).__name__}: {text[:400]} (unexpected: run with --debug for the traceback, and please report it)"


def main() -> None:
    try:
        app()
    except CustvalError as exc:
        if _DEBUG["on"]:
            raise
        err_console.print(f"[bold red]error:[/] {custval_error_line(exc)}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _DEBUG["on"]:
            raise
        err_console.print(f"[bold red]error:[/] {failure_line(exc)}", soft_wrap=True)
        sys.exit(1)
