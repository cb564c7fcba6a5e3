"""One snapshot's report as one self-contained HTML page: `render(inputs) -> str`.

Pure: frames and the manifest in, a string out; no clock, no environment, no file. The same
inputs give the same bytes (a rerun's page is the rerun's tables). The page loads nothing:
styles are inline, plots are inline SVG, there is no script, and a Content-Security-Policy
forbids every request, so it opens offline, from a mail attachment or a file share.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import jinja2

from pipelines.report.blocks import Page
from pipelines.report.inputs import ReportInputs
from pipelines.report.sections import SECTIONS


@cache
def _template() -> jinja2.Template:
    source = resources.files(__package__).joinpath("template.html.j2").read_text("utf-8")
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.from_string(source)


def page(inputs: ReportInputs) -> Page:
    m = inputs.manifest
    status = m.get("status") or "unknown"
    subtitle = f"Run {m.get('run_id', '?')} · status {status}"
    if m.get("source_kind"):
        subtitle += f" · {m['source_kind']} source"
    footer = (
        f"custval report of snapshot {inputs.snapshot_date}, rendered from its published tables "
        f"and manifest (version {m.get('version', 'being published')}). Money is in "
        f"{inputs.settings.currency}."
    )
    return Page(
        title=f"Customer value report · {inputs.snapshot_date}",
        subtitle=subtitle,
        sections=[build(inputs) for build in SECTIONS],
        footer=footer,
    )


def render(inputs: ReportInputs) -> str:
    return _template().render(page=page(inputs))
