"""Data Docs keep every run's validation page, list them all, and name the batch's asset.

Each run validates in its own ephemeral GX context; the site under the warehouse must still
show earlier runs (and the page an older manifest links to must still exist), also when two
runs validate at the same time in separate processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import polars as pl
import pytest

from pipelines.contracts import load_contract
from pipelines.storage import layout
from pipelines.validate.gx import runner

ASSET = "dd_contract_v1"  # run_suite names the dataframe asset after the suite


pytestmark = pytest.mark.slow


def _make_suite() -> object:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=ASSET)
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(
            column="amount", max_value=100, meta={"rule": "amount.maximum", "severity": "warn"}
        )
    )
    return suite


FRAME = pl.DataFrame({"amount": [1.0, 2.0, 500.0], runner.ROW_KEY: [0, 1, 2]})


def _linked(index_html: str, docs_dir: Path, page: str) -> bool:
    """The index's table of validations links `page` (a path relative to the site, URL-quoted)."""
    relative = Path(page).relative_to(docs_dir).as_posix()
    return f"'_table_row_link_path': '{quote(relative)}'" in index_html


def _assert_page_names_asset(page: str, asset: str) -> None:
    html = Path(page).read_text(encoding="utf-8")
    assert "Data asset: None" not in html
    assert f"Data asset: {asset}" in html


@pytest.mark.slow
def test_second_run_keeps_the_first_runs_page(tmp_path: Path) -> None:
    docs = tmp_path / "docs" / "validation"
    first = runner.run_suite(FRAME, _make_suite, docs, run_name="2024-03-01_run")
    second = runner.run_suite(FRAME, _make_suite, docs, run_name="2024-03-02_run")

    assert first.docs_page and second.docs_page and first.docs_page != second.docs_page
    assert first.docs_index == second.docs_index == str(docs / "index.html")
    for report in (first, second):
        assert Path(report.docs_page).is_file()  # type: ignore[arg-type]
        _assert_page_names_asset(report.docs_page, ASSET)  # type: ignore[arg-type]
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert _linked(index, docs, first.docs_page)
    assert _linked(index, docs, second.docs_page)
    # one result file per run in the store the index is listed from; no temporary files left
    results = sorted((docs / runner.RESULTS_DIR).rglob("*.json"))
    assert len(results) == 2
    for path in results:
        meta = json.loads(path.read_text())["meta"]
        assert meta["batch_spec"]["data_asset_name"] == ASSET
        assert meta["batch_spec"]["batch_data"] == "PandasDataFrame"  # never the frame itself
    assert not list(docs.rglob("*.tmp"))


RUNS_EACH = 5

_WORKER = textwrap.dedent(
    f"""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from pipelines.validate.gx import runner
    from test_data_docs import FRAME, _make_suite

    signals = Path(sys.argv[1])
    runner._gx_classes()  # import GX (seconds) before the start, so the two processes overlap
    (signals / "ready").touch()
    while not (signals / "go").exists():
        time.sleep(0.005)
    for i in range({RUNS_EACH}):
        print(runner.run_suite(FRAME, _make_suite, signals / "docs", f"2024-03-02_{{i}}").docs_page)
    """
)


def _worker_files(docs: Path, pattern: str) -> list[Path]:
    return list(docs.glob(pattern)) if docs.exists() else []


@pytest.mark.slow
def test_concurrent_runs_in_two_processes_keep_all_pages(tmp_path: Path) -> None:
    """This process and a worker process validate different snapshots at the same time.

    First this process holds the site lock: the worker validates (its result file appears) but
    must wait to build the site. Then both run several validations at once.
    """
    docs = tmp_path / "docs"
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        runner._gx_classes()
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists():
            assert worker.poll() is None, worker.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.01)
        docs.mkdir()
        with runner._site_lock(docs):
            (tmp_path / "go").touch()
            while not _worker_files(docs, f"{runner.RESULTS_DIR}/*/2024-03-02_0/*/*.json"):
                assert worker.poll() is None, worker.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the worker did not validate"
                time.sleep(0.01)
            time.sleep(1.0)  # a build takes a fraction of a second: the worker is waiting
            assert worker.poll() is None
            assert not _worker_files(docs, "validations/*/2024-03-02_0/*/*.html")
        pages = [
            runner.run_suite(FRAME, _make_suite, docs, run_name=f"2024-03-01_{i}").docs_page
            for i in range(RUNS_EACH)
        ]
        out, err = worker.communicate(timeout=240)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err[-3000:]
    pages += out.split()
    assert len(pages) == 2 * RUNS_EACH
    index = (docs / "index.html").read_text(encoding="utf-8")
    for page in pages:
        assert page and Path(page).is_file(), page
        assert _linked(index, docs, page), page
    assert not list(docs.rglob("*.tmp"))


def test_a_page_without_a_result_in_the_store_is_not_deleted(tmp_path: Path) -> None:
    """GX's default index builder deletes pages it has no result for (e.g. one another process
    is writing, or one from before results were kept); the site keeps them."""
    docs = tmp_path / "docs"
    foreign = docs / "validations" / ASSET / "other_run" / "20240301T000000.000000Z" / "b.html"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("<html>another run</html>", encoding="utf-8")
    report = runner.run_suite(FRAME, _make_suite, docs, run_name="2024-03-03_run")
    assert foreign.read_text(encoding="utf-8") == "<html>another run</html>"
    assert Path(report.docs_page).is_file()  # type: ignore[arg-type]


@pytest.fixture
def no_predictions(tmp_path: Path) -> Path:
    path = tmp_path / "no_predictions.yaml"
    path.write_text("predictive:\n  enabled: false\n")
    return path


@pytest.mark.slow
def test_pipeline_runs_of_two_snapshots_both_keep_their_docs_page(
    generated_orders: tuple[Path, pl.DataFrame, object],
    run_pipeline: Callable[..., dict],
    no_predictions: Path,
    tmp_path: Path,
) -> None:
    source, _, last_day = generated_orders
    wh = tmp_path / "wh"
    earlier = run_pipeline(source, "2024-06-30", warehouse=wh, config=no_predictions)
    later = run_pipeline(source, last_day, warehouse=wh, config=no_predictions)

    docs = wh / layout.DOCS
    orders = load_contract("orders")
    index = (docs / "index.html").read_text(encoding="utf-8")
    for returned in (earlier, later):
        manifest_file = wh / "runs" / f"snapshot_date={returned['snapshot_date']}" / "manifest.json"
        page = json.loads(manifest_file.read_text())["validation"]["docs_page"]
        assert page == returned["validation"]["docs_page"]
        assert Path(page).is_file(), page
        assert _linked(index, docs, page)
        _assert_page_names_asset(page, f"{orders.name}_contract_v{orders.version}")
    assert earlier["validation"]["docs_page"] != later["validation"]["docs_page"]
