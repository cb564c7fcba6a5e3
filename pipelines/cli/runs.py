"""`custval run`, `backfill` and `unlock`: one snapshot, a range of them, a stuck lease."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines.cli import logs
from pipelines.cli.app import (
    ConfigOption,
    SourceOption,
    WarehouseOption,
    app,
    console,
    err_console,
    fail,
    parse_date_option,
    seconds_option,
    settings,
)
from pipelines.cli.failures import custval_error_line, failure_line
from pipelines.errors import CustvalError


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


def run_context(
    source: str,
    as_of: date,
    warehouse: Path,
    config: Path | None,
    source_kind: str = "auto",
    table: str | None = None,
    reingest: bool = False,
    allow_partial_day: bool = False,
    shards: int | None = None,
    workers: int | None = None,
) -> Any:
    from pipelines.context import RunContext

    if shards is not None and not 1 <= shards <= 4096:
        fail(f"--shards must be between 1 and 4096, not {shards}", 2)
    if workers is not None and workers < 1:
        fail(f"--workers must be at least 1, not {workers}", 2)

    return RunContext.create(
        source=source,
        snapshot_date=as_of,
        warehouse=warehouse,
        config_path=str(config) if config else None,
        source_kind=source_kind,
        table=table,
        reingest=reingest,
        allow_partial_day=allow_partial_day,
        shards=shards,
        shard_workers=workers,
    )


def run_snapshot(ctx: Any, quiet: bool = False, wait_seconds: float = 0) -> dict[str, Any]:
    """Run the pipeline for one snapshot with a live line per stage."""
    from pipelines.run.pipeline import run_all

    if not quiet:
        console.print(
            f"[bold]custval run[/] snapshot {ctx.snapshot_date} · source {ctx.source_spec.display} → {ctx.location}"
        )
    started: dict[str, float] = {}
    status = None if quiet else console.status("starting ...")

    def on_start(name: str, _ctx: Any) -> None:
        started[name] = time.perf_counter()
        if status is not None:
            status.update(f"{name} ...")

    def on_progress(progress: str) -> None:  # within a long stage: the marts' models
        if status is not None and started:
            status.update(f"{list(started)[-1]}: {progress} ...")

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
        with logs.progress_to(on_progress):
            manifest = run_all(
                ctx, on_stage_start=on_start, on_stage_end=on_end, wait_seconds=wait_seconds
            )
    finally:
        if status is not None:
            status.stop()
    if not quiet:
        # the run's warnings reached stderr as log records (pipelines/cli/logs.py)
        if manifest.get("status") == "degraded":
            err_console.print(
                "[yellow]warning:[/] run status degraded: every table is published, but a model "
                "could not be fitted (see model_fit; predictive.on_failure sets what happens)",
                soft_wrap=True,
            )
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


ShardsOption = Annotated[
    int | None,
    typer.Option(
        "--shards",
        help="Shard the build by customer into K shards (default: the config's sources.shards, 1).",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Processes running the shards (default: sources.shard_workers, else one per shard up to the cores).",
    ),
]


@app.command()
def run(
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of", help="Snapshot date YYYY-MM-DD: orders up to the end of this day (UTC)."
        ),
    ],
    source: SourceOption = None,
    warehouse: WarehouseOption = None,
    config: ConfigOption = None,
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
    shards: ShardsOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run the whole pipeline for one snapshot date."""
    snapshot = parse_date_option(as_of, "--as-of")
    assert snapshot is not None
    wait = seconds_option(wait, "--wait")
    given = settings("source", "warehouse", source=source, warehouse=warehouse, config=config)
    ctx = run_context(
        given.source,  # type: ignore[arg-type]
        snapshot,
        given.warehouse,  # type: ignore[arg-type]
        given.config,
        source_kind,
        table,
        reingest,
        allow_partial_day,
        shards,
        workers,
    )
    manifest = run_snapshot(ctx, wait_seconds=wait)
    if manifest.get("report_path"):
        console.print(f"report:    {manifest['report_path']}", soft_wrap=True, markup=False)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First snapshot date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last snapshot date (YYYY-MM-DD), included.")],
    source: SourceOption = None,
    warehouse: WarehouseOption = None,
    config: ConfigOption = None,
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

    from pipelines.run.lifecycle import preflight
    from pipelines.run.pipeline import run_dates

    first, last = parse_date_option(start, "--start"), parse_date_option(end, "--end")
    assert first is not None and last is not None
    if last < first:
        fail(f"--end {last} is before --start {first}", 2)
    wait = seconds_option(wait, "--wait")
    given = settings("source", "warehouse", source=source, warehouse=warehouse, config=config)
    source, warehouse, config = given.source, given.warehouse, given.config
    assert source is not None and warehouse is not None
    first_ctx = run_context(source, first, warehouse, config, source_kind, table)
    try:
        preflight(first_ctx)  # before date 1
    finally:
        first_ctx.close_view()  # an s3:// warehouse: each date's run opens its own
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
            lambda day: run_context(
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
        fail(f"{failures} of {total} dates failed", 1)


@app.command()
def unlock(
    as_of: Annotated[str, typer.Option("--as-of", help="The snapshot date whose lease to remove.")],
    warehouse: WarehouseOption = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Remove the lease even if its run looks alive, or the file is unreadable."
        ),
    ] = False,
) -> None:
    """Remove a snapshot's lease left by a run that died (a dead run's lease is also taken over by itself)."""
    from pipelines.context import check_warehouse
    from pipelines.storage import local_view, locking
    from pipelines.storage.recovery import recover_warehouse

    snapshot = parse_date_option(as_of, "--as-of")
    assert snapshot is not None
    root = check_warehouse(settings("warehouse", warehouse=warehouse).warehouse)  # type: ignore[arg-type]
    try:
        console.print(locking.unlock(root, snapshot, force=force))
        recover_warehouse(root)
    finally:
        if local_view.remote_of(root) is not None:  # an s3:// warehouse: this command's view
            local_view.close(root)
