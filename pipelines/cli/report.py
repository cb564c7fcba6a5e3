"""`custval report` and `custval catalog`: what people and BI tools read, rebuilt by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.app import (
    ConfigOption,
    WarehouseOption,
    app,
    console,
    parse_date_option,
    settings,
)


@app.command()
def report(
    as_of: Annotated[str, typer.Option("--as-of", help="The published snapshot (YYYY-MM-DD).")],
    warehouse: WarehouseOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the page (default: ./custval-report-<date>.html)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Render a snapshot's report from its published tables and manifest (what each run publishes
    at DIR/reports/snapshot_date=D/index.html)."""
    from pipelines.context import check_warehouse
    from pipelines.report.publish import render_published

    snapshot = parse_date_option(as_of, "--as-of")
    assert snapshot is not None
    given = settings("warehouse", warehouse=warehouse, config=config)  # config: else the run's
    target = out or Path(f"custval-report-{snapshot.isoformat()}.html")
    path = render_published(check_warehouse(given.warehouse), snapshot, target, given.config)  # type: ignore[arg-type]
    console.print(f"report:    {path}", soft_wrap=True, markup=False)


@app.command()
def catalog(
    warehouse: WarehouseOption = None,
) -> None:
    """Rebuild DIR/custval.duckdb, the DuckDB catalog BI tools open (a view per table over all
    snapshots and <table>_latest); every publish rebuilds it, so this is for after moving the
    warehouse or a rebuild that failed."""
    from pipelines.context import check_warehouse
    from pipelines.publish.catalog import build_catalog

    path = build_catalog(check_warehouse(settings("warehouse", warehouse=warehouse).warehouse))  # type: ignore[arg-type]
    console.print(f"catalog:   {path}", soft_wrap=True, markup=False)
