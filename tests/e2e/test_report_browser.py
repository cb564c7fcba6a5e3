"""The report in a real browser: `custval demo`'s page opened in headless Chromium.

It must load without a console error and without a single request beyond the file itself,
draw its figures, and show the run's segment names and KPI figures -- read here from the
published Parquet, not from the page's own code. A full-page screenshot is kept as a test
artifact (`$CUSTVAL_TEST_ARTIFACTS`, default `tests/artifacts/`).

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them): skipped without
them locally, a failure in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import REPO, require

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def artifacts_dir() -> Path:
    path = Path(os.environ.get("CUSTVAL_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument("--window-size=1200,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require(
        CHROMIUM.is_file() and CHROMEDRIVER.exists() and shutil.which("chromedriver") is not None,
        "headless Chromium (apt-get install chromium chromium-driver)",
    )
    base = tmp_path_factory.mktemp("browser")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "demo",
            "--dir",
            str(base / "demo"),
            "--orders",
            "20000",
        ],
        capture_output=True,
        text=True,
        cwd=base,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("report:"), res.stdout[-2000:]  # demo ends with the page to open
    page = Path(last.split(":", 1)[1].strip())
    assert page.is_file()
    return {
        "page": page,
        "warehouse": base / "demo" / "warehouse",
        "source": base / "demo" / "orders.csv",
    }


def test_report_in_headless_chromium(demo: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    page: Path = demo["page"]
    url = page.resolve().as_uri()
    driver = browser()
    try:
        driver.get(url)
        for _ in range(100):
            if driver.execute_script("return document.readyState") == "complete":
                break
            time.sleep(0.1)
        body = driver.find_element(By.TAG_NAME, "body").text
        figures = driver.find_elements(By.CSS_SELECTOR, "svg.fig")
        sizes = [f.size for f in figures]
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1200, min(int(height) + 40, 16_000))
        shot = artifacts_dir() / "report.png"
        assert driver.save_screenshot(str(shot))
        console = driver.get_log("browser")
        performance = driver.get_log("performance")
    finally:
        driver.quit()

    assert [e for e in console if e.get("level") in ("SEVERE", "WARNING")] == []
    requested = []
    for entry in performance:
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested and requested[0] == url
    assert [u for u in requested if u != url and not u.startswith("data:")] == []

    assert len(figures) >= 8 and all(s["width"] > 100 and s["height"] > 50 for s in sizes)
    assert shot.stat().st_size > 50_000

    wh: Path = demo["warehouse"]
    day = page.parent.name  # snapshot_date=D
    rfm = pl.read_parquet(wh / "marts" / "customer_rfm" / day)
    for segment in rfm["rfm_segment"].unique().to_list():
        assert segment in body, segment
    kpi = pl.read_parquet(wh / "marts" / "kpi_summary" / day).row(0, named=True)
    assert f"CUSTOMERS\n{kpi['customers']:,}" in body.upper()
    assert f"{kpi['active_customers']:,}" in body and f"{kpi['new_customers']:,}" in body
    assert f"{rfm.height:,}" in body  # the count straight from customer_rfm's rows
    for key in ("repeat_purchase_rate", "retention_rate", "churn_rate"):
        assert f"{kpi[key]:.1%}" in body, key
    assert f"{kpi['average_order_value']:,.2f}" in body
    top = rfm.sort(["monetary_total", "customer_id"], descending=[True, False])["customer_id"][0]
    assert top in body

    emails = pl.read_csv(demo["source"], columns=["email"])["email"].unique().to_list()
    html = page.read_text()
    assert len(emails) > 1000 and [e for e in emails if e in html] == []
