"""Where a report is written: into the snapshot version being committed, or to a chosen file.

The publish path: the manifest stage calls `publish_report` with the record it is about to
write; the page goes into the same version as the tables it shows
(`<version>/reports/index.html`) and becomes visible with them, in the commit's one switch,
at `DIR/reports/snapshot_date=D/index.html`. A report that cannot be rendered never holds
back the tables -- they are the product, the page a view of them -- so the failure becomes a
manifest warning instead.

The re-render path (`custval report`): the same inputs read back from the published manifest
and the version it pins, so the page comes out the same as the one the run published.
"""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

from pipelines.config import ConfigError, load_config
from pipelines.context import RunContext
from pipelines.errors import CustvalError
from pipelines.report.inputs import ReportSettings, collect
from pipelines.storage import files, layout, snapshots
from pipelines.storage.faults import checkpoint
from pipelines.storage.jsonfile import read_json

log = logging.getLogger(__name__)

REPORT_FILE = PurePosixPath(layout.REPORTS) / "index.html"  # within a snapshot version


def report_path(warehouse: Path, snapshot: date) -> Path:
    """Where readers find a snapshot's report: `DIR/reports/snapshot_date=D/index.html`."""
    return snapshots.visible_path(warehouse, snapshot, REPORT_FILE)


def write_page(path: Path, html: str) -> None:
    """Write the page whole: a temporary file beside it, then one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # a dot file: never committed
    tmp.write_text(html, encoding="utf-8")
    checkpoint("publish.report")
    files.move(tmp, path)


def render_page(
    warehouse: Path,
    snapshot: date,
    version: Path,
    manifest: dict[str, Any],
    settings: ReportSettings,
    page: Path,
) -> str:
    from pipelines.report.render import render  # matplotlib and jinja2 load only here

    inputs = collect(warehouse, snapshot, version / layout.MARTS, manifest, settings, page.parent)
    return render(inputs)


def publish_report(ctx: RunContext, version: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Render the snapshot's page into `version`; the manifest keys to add (`report_path`)."""
    visible = report_path(ctx.warehouse, ctx.snapshot_date)
    settings = ReportSettings.from_config(ctx.config)
    try:
        html = render_page(ctx.warehouse, ctx.snapshot_date, version, manifest, settings, visible)
    except Exception as exc:  # noqa: BLE001 -- a report bug must not stop the tables' publication
        warning = f"report not rendered: {type(exc).__name__}: {exc}"
        log.warning(warning)
        return {"report_path": None, "warnings": [*manifest.get("warnings", []), warning]}
    write_page(version / REPORT_FILE, html)
    return {"report_path": str(visible)}


def _settings(manifest: dict[str, Any], config: Path | None) -> ReportSettings:
    """The config the run used (named in its manifest), or `config` when given."""
    path = config or manifest.get("config")
    if path is not None and not Path(path).is_file():
        return ReportSettings.from_config(load_config(None), known=False)
    try:
        return ReportSettings.from_config(load_config(path))
    except ConfigError:
        return ReportSettings.from_config(load_config(None), known=False)


def render_published(
    warehouse: Path, snapshot: date, out: Path, config: Path | None = None
) -> Path:
    """Render a published snapshot's page again, from its manifest and pinned version."""
    manifest = read_json(layout.manifest_path(warehouse, snapshot))
    if manifest is None:
        raise CustvalError(f"snapshot {snapshot} is not published in {warehouse}")
    version = snapshots.snapshot_root(warehouse, snapshot) / str(manifest.get("version", ""))
    if not manifest.get("version") or not version.is_dir():
        raise CustvalError(
            f"snapshot {snapshot}: its version {manifest.get('version')!r} is gone (republished "
            "meanwhile?); run the command again"
        )
    out = out.expanduser().resolve()
    html = render_page(warehouse, snapshot, version, manifest, _settings(manifest, config), out)
    write_page(out, html)
    return out
