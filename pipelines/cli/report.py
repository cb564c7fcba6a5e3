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
from pipelines.errors import CustvalError


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
    from pipelines.run import sync
    from pipelines.storage import local_view

    snapshot = parse_date_option(as_of, "--as-of")
    assert snapshot is not None
    given = settings("warehouse", warehouse=warehouse, config=config)  # config: else the run's
    target = out or Path(f"custval-report-{snapshot.isoformat()}.html")
    root = check_warehouse(given.warehouse)  # type: ignore[arg-type]
    try:
        sync.pull_published(root, snapshot)  # an s3:// warehouse: the pinned snapshot, locally
        path = render_published(root, snapshot, target, given.config)
    except CustvalError as exc:
        if local_view.remote_of(root) is None:
            raise
        raise type(exc)(local_view.text_form(root, str(exc))) from None
    finally:
        if local_view.remote_of(root) is not None:
            local_view.close(root)
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
    from pipelines.storage import local_view

    root = check_warehouse(settings("warehouse", warehouse=warehouse).warehouse)  # type: ignore[arg-type]
    try:
        path = build_catalog(root)
    finally:
        if local_view.remote_of(root) is not None:
            local_view.close(root)
    console.print(f"catalog:   {path}", soft_wrap=True, markup=False)
