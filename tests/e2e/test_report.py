"""The snapshot report end to end: `custval run` publishes it, `custval report` renders it again.

Two snapshots of one warehouse, the first with the models turned off: each run prints its
page's path, the manifest links it, the page is a link into the snapshot's version like every
published file, the second page compares with the first, and neither holds any of the
names, e-mail addresses or phone numbers of the source.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.tools.generate import simulate_orders, write_orders


def custval(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def printed_report(stdout: str) -> Path:
    lines = [line for line in stdout.splitlines() if line.startswith("report:")]
    assert len(lines) == 1, stdout[-2000:]
    return Path(lines[0].split(":", 1)[1].strip())


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("report")
    frame = simulate_orders(20_000, seed=21, start=date(2024, 1, 1), days=400)
    frame = frame.with_columns(  # PII a page must never show
        ("Firstname " + pl.col("customer_id") + " Lastname").alias("name"),
        ("+1-555-" + pl.col("customer_id").str.slice(-6)).alias("phone"),
    )
    source = write_orders(frame, base / "orders.csv", "csv")
    last = frame["order_ts"].max().date()  # type: ignore[union-attr]
    off = base / "models_off.yaml"
    off.write_text("predictive:\n  enabled: false\n")
    wh = base / "wh"
    runs = {}
    for day, config in ((last - timedelta(days=1), off), (last, None)):
        args = ["run", "--source", str(source), "--as-of", day.isoformat(), "--warehouse", str(wh)]
        res = custval(*args, *(["--config", str(config)] if config else []))
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout.strip().splitlines()[-1].startswith("report:")  # the last line
        runs[day] = printed_report(res.stdout)
    pii = {
        *frame["email"].unique().to_list(),
        *frame["name"].unique().to_list(),
        *frame["phone"].unique().to_list(),
    }
    return {"wh": wh, "runs": runs, "last": last, "pii": pii, "base": base}


def test_run_publishes_the_report_with_the_snapshot(warehouse: dict[str, object]) -> None:
    wh: Path = warehouse["wh"]  # type: ignore[assignment]
    runs: dict[date, Path] = warehouse["runs"]  # type: ignore[assignment]
    for day, page in runs.items():
        assert page == wh / "reports" / f"snapshot_date={day}" / "index.html"
        manifest = json.loads((wh / "runs" / f"snapshot_date={day}" / "manifest.json").read_text())
        assert manifest["report_path"] == str(page)
        assert not [w for w in manifest["warnings"] if "report" in w]
        version = wh / "_snapshots" / f"snapshot_date={day}" / manifest["version"]
        assert page.is_symlink() and page.resolve() == (version / "reports" / "index.html")
        html = page.read_text()
        assert f"Customer value report · {day}" in html
        assert len(html.encode()) < 2_000_000
        assert re.search(r"https?://", html) is None and "<script" not in html
        # the Data Docs link is relative and lands on the run's validation page
        href = re.search(r'<a href="([^"#][^"]*)">Open the validation report', html)
        assert href is not None
        assert (page.parent / href.group(1)).resolve() == Path(
            manifest["validation"]["docs_page"]
        ).resolve()


def test_the_report_never_shows_pii(warehouse: dict[str, object]) -> None:
    pii: set[str] = warehouse["pii"]  # type: ignore[assignment]
    assert len(pii) > 3 * 1000
    for page in warehouse["runs"].values():  # type: ignore[attr-defined]
        html = page.read_text()
        assert [value for value in pii if value in html] == []
        assert "@example.com" not in html and "Lastname" not in html


def test_sections_follow_the_config_and_the_previous_snapshot(
    warehouse: dict[str, object],
) -> None:
    runs: dict[date, Path] = warehouse["runs"]  # type: ignore[assignment]
    last: date = warehouse["last"]  # type: ignore[assignment]
    off, on = runs[last - timedelta(days=1)].read_text(), runs[last].read_text()
    assert "predictive.enabled: false" in off and "first published snapshot" in off
    assert "P(alive) by repeat purchases" in on and "predictive.enabled: false" not in on
    assert f"since the previous published snapshot, {last - timedelta(days=1)}" in on


def test_report_command_renders_the_published_page_again(warehouse: dict[str, object]) -> None:
    wh: Path = warehouse["wh"]  # type: ignore[assignment]
    last: date = warehouse["last"]  # type: ignore[assignment]
    published = warehouse["runs"][last]  # type: ignore[index]
    # at the same depth below the warehouse, so that the relative Data Docs link is the same
    out = wh / "rendered_again" / f"snapshot_date={last}" / "index.html"
    res = custval("report", "--as-of", last.isoformat(), "--warehouse", str(wh), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert printed_report(res.stdout) == out
    assert out.read_bytes() == published.read_bytes()

    cwd: Path = warehouse["base"]  # type: ignore[assignment]
    res = custval("report", "--as-of", last.isoformat(), "--warehouse", str(wh), cwd=cwd)
    assert res.returncode == 0, res.stderr[-3000:]
    assert printed_report(res.stdout) == cwd / f"custval-report-{last}.html"
    assert os.path.getsize(cwd / f"custval-report-{last}.html") > 10_000

    missing = custval("report", "--as-of", "2020-01-01", "--warehouse", str(wh))
    assert missing.returncode == 1 and "snapshot 2020-01-01 is not published" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
