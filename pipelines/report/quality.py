"""The data-quality section: where every input row went, why rows were quarantined, warnings.

Only the manifest's counts are shown -- never the quarantine's rows, which hold source values
as received (PII). The Great Expectations Data Docs page of the run is linked relatively, so
the link works wherever the warehouse is mounted and the page makes no request of its own.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from pipelines.report.blocks import Block, Link, Note, Section, Table, count
from pipelines.report.inputs import ReportInputs
from pipelines.validate.quarantine import REASON_CODES

MAX_FILES = 20  # a landing directory may hold thousands: the largest ones, then a total


def _reconciliation(counts: dict[str, Any], files: list[dict[str, Any]]) -> Table:
    keys = ("rows_in", "rows_accepted", "rows_quarantined", "rows_duplicate")
    listed = [f for f in files if all(k in f for k in keys)]
    listed.sort(key=lambda f: (-int(f["rows_quarantined"] or 0), -int(f["rows_in"] or 0)))
    rows = []
    for f in listed[:MAX_FILES]:
        name = PurePath(str(f.get("path") or f.get("file"))).name
        rows.append([name, *(count(f[k]) for k in keys)])
    if len(listed) > MAX_FILES:
        rows.append([f"… {len(listed) - MAX_FILES:,} more files", *([""] * len(keys))])
    rows.append(["all files", *(count(counts.get(k)) for k in keys)])
    return Table(
        ["Source", "Rows in", "Accepted", "Quarantined", "Exact duplicates"],
        rows,
        [False, True, True, True, True],
    )


def quality_section(inputs: ReportInputs) -> Section:
    read = (
        "Every row read from the source ends up in exactly one place -- accepted, quarantined "
        "with a reason, or dropped as an exact duplicate -- and the run stops unless they add up."
    )
    title = "Data quality"
    m = inputs.manifest
    counts: dict[str, Any] = dict(m.get("counts") or {})
    blocks: list[Block] = []
    if counts:
        total = sum(
            int(counts.get(k) or 0) for k in ("rows_accepted", "rows_quarantined", "rows_duplicate")
        )
        ok = int(counts.get("rows_in") or 0) == total
        blocks.append(
            Note(
                f"rows in {count(counts.get('rows_in'))} = accepted {count(counts.get('rows_accepted'))}"
                f" + quarantined {count(counts.get('rows_quarantined'))}"
                f" + duplicate {count(counts.get('rows_duplicate'))}"
                + (": reconciled." if ok else ": does NOT reconcile."),
                "ok" if ok else "bad",
            )
        )
        blocks.append(_reconciliation(counts, list(m.get("files") or [])))
        if "rows_in_snapshot" in counts:
            blocks.append(
                Note(
                    f"{count(counts['rows_in_snapshot'])} accepted orders are in this snapshot "
                    f"(placed up to the end of {inputs.snapshot_date}); "
                    f"{count(counts.get('rows_after_snapshot'))} are later."
                )
            )
    else:
        blocks.append(Note("The manifest has no counts for this snapshot.", "warn"))
    if m.get("quiet_day"):
        blocks.append(
            Note("A quiet day: no new rows arrived, the snapshot is the accepted history.")
        )
    if m.get("gaps"):
        blocks.append(Note(f"No batch has arrived yet for {', '.join(m['gaps'])}.", "warn"))
    for refused in m.get("refused_files") or []:
        blocks.append(
            Note(
                f"File not read: {PurePath(str(refused.get('path'))).name} ({refused.get('reason')}).",
                "warn",
            )
        )
    reasons: dict[str, int] = dict(m.get("quarantine_reasons") or {})
    if reasons:
        blocks.append(
            Table(
                ["Reason", "Rows", "Meaning"],
                [
                    [code, count(n), REASON_CODES.get(code, "")]
                    for code, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
                ],
                [False, True, False],
                caption="Quarantined rows by their first reason.",
            )
        )
    else:
        blocks.append(Note("No row was quarantined.", "ok"))
    validation = m.get("validation") or {}
    if validation:
        verdict = "passed" if validation.get("success") else "found rows to quarantine"
        blocks.append(
            Note(
                f"Great Expectations checked {validation.get('expectations', '?')} expectations: {verdict}."
            )
        )
    if inputs.data_docs_href:
        blocks.append(
            Link("Open the validation report (Great Expectations Data Docs)", inputs.data_docs_href)
        )
    warnings = list(m.get("warnings") or [])
    blocks += [Note(f"Warning: {w}", "warn") for w in warnings]
    return Section("quality", title, read, blocks)
