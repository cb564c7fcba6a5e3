"""`custval report`: render a published snapshot's HTML report again, from its tables alone."""

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
