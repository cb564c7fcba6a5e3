"""`custval report` and `custval catalog`: what people and BI tools read, rebuilt by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.app import app, console, fail, parse_date_option


@app.command()
def report(
    as_of: Annotated[str, typer.Option("--as-of", help="The published snapshot (YYYY-MM-DD).")],
    warehouse: Annotated[Path, typer.Option(help="Warehouse directory.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the page (default: ./custval-report-<date>.html)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Config to explain the page with (default: the one the run used)."),
    ] = None,
) -> None:
    """Render a snapshot's report from its published tables and manifest (what each run publishes
    at DIR/reports/snapshot_date=D/index.html)."""
    from pipelines.context import check_warehouse
    from pipelines.report.publish import render_published

    snapshot = parse_date_option(as_of, "--as-of")
    assert snapshot is not None
    if config is not None and not config.is_file():
        fail(f"config file not found: {config}", 2)
    target = out or Path(f"custval-report-{snapshot.isoformat()}.html")
    path = render_published(check_warehouse(warehouse), snapshot, target, config)
    console.print(f"report:    {path}", soft_wrap=True, markup=False)


@app.command()
def catalog(
    warehouse: Annotated[
        Path, typer.Option(envvar="CUSTVAL_WAREHOUSE", help="Warehouse directory.")
    ],
) -> None:
    """Rebuild DIR/custval.duckdb, the DuckDB catalog BI tools open (a view per table over all
    snapshots and <table>_latest); every publish rebuilds it, so this is for after moving the
    warehouse or a rebuild that failed."""
    from pipelines.context import check_warehouse
    from pipelines.publish.catalog import build_catalog

    path = build_catalog(check_warehouse(warehouse))
    console.print(f"catalog:   {path}", soft_wrap=True, markup=False)
