"""The HTML audit report in a real headless browser: Debian's chromium driven by Selenium through chromedriver.

`beat-bridge audit` writes the CSV and the HTML page of one period from
snapshot rows in a fresh SQLite database; chromium loads the page from its
file:// URL. No console error, each chart drawn with a size, no value ran as
code, and the data the page embeds, read by the browser, equals the CSV.
Selenium gets the driver's path (a Service), so it never downloads anything.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from required_parts import need

from bridge.audit_html import CHART_IDS
from bridge.config import load_config
from bridge.models_audit import AccountingSnapshot
from bridge.preflight import open_database

REPO = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
T0 = datetime(2026, 11, 20, 9, 0, 0)
PERIOD = ("--since", "2026-11-20", "--until", "2026-11-21")
HOSTILE = "<script>alert(1)</script>"
STATES = ["COMPLETED", "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED by 0"]

CHART_BOX = """
const svg = document.querySelector('#' + arguments[0] + ' > svg');
if (!svg) return null;
const box = svg.getBoundingClientRect();
return {width: box.width, height: box.height, shapes: svg.querySelectorAll('path, use, text').length};
"""


@pytest.fixture(scope="module")
def browser():
    """A headless chromium (Debian's) through Debian's chromedriver, logging the console."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        need("chromium", f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
             "(scripts/setup.sh does with BRIDGE_SETUP_TEST_PARTS=1)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        need("chromium", "selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1024", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _row(i: int) -> AccountingSnapshot:
    state = STATES[i % len(STATES)]
    start = T0 + timedelta(minutes=3 * i)
    lacking = i == 5  # sacct never settled it: counted, in no sum
    return AccountingSnapshot(
        split_id=i, split_status="C" if state == "COMPLETED" else "F", experiment_id=1 + i % 2,
        experiment_name=HOSTILE if i % 2 else "diamond", author="bob" if i % 3 else "amy", block_name="b",
        queue_name="default" if i % 4 else "long", algorithm="bridge.examples.algorithms:square", array_job_id=300,
        element_id=f"300_{i}", status="unavailable" if lacking else "complete", first_seen=start + timedelta(hours=1),
        attempts=1, partition="cpu", node_list=None if lacking else f"n{1 + i % 2}",
        alloc_cpus=None if lacking else 2, req_mem_mb=1000, max_rss_kb=None if lacking else 100 * 1024 * (1 + i % 5),
        total_cpu_s=None if lacking else 30.0 * (1 + i % 4), elapsed_s=None if lacking else 60 * (i + 1),
        timelimit_min=30, submit=start - timedelta(seconds=10 * i), start=None if lacking else start,
        end=None if lacking else start + timedelta(seconds=60 * (i + 1)), state=None if lacking else state,
        exit_code=None if lacking else "0:0" if state == "COMPLETED" else "1:0")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The shipped configuration, its SQLite database holding 24 snapshot rows of the period."""
    root = tmp_path_factory.mktemp("audit-browser")
    (root / "config").mkdir()
    for name in ("bridge.toml", "queues.toml"):
        shutil.copy(REPO / "config" / name, root / "config" / name)
    config = load_config(root / "config" / "bridge.toml")
    sessions = open_database(config.path, config.database_url)
    with sessions() as session:
        session.add_all([_row(i) for i in range(24)])
        session.commit()
    return root


def audit_cli(workdir: Path, *args: str, period: tuple[str, ...] = PERIOD) -> str:
    """`python -m bridge.cli audit` of this tree over the period (snapshots only: no sacct, no reconcile, so
    that the page does not depend on what else the cluster runs; test_audit_html renders that section); stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "audit", "--config", "config/bridge.toml", *period, "--no-sacct",
         "--no-reconcile", *args],
        capture_output=True, text=True, timeout=120, cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_report_loads_in_chromium_with_its_charts_and_the_csv_data(browser, workdir):
    expected = list(csv.DictReader(io.StringIO(audit_cli(workdir, "--by", "experiment", "--format", "csv"))))
    page = workdir / "audit.html"
    audit_cli(workdir, "--by", "experiment", "--format", "html", "--output", str(page))

    browser.get_log("browser")  # what an earlier page left
    browser.get(page.resolve().as_uri())
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []

    for chart_id in CHART_IDS:
        box = browser.execute_script(CHART_BOX, chart_id)
        assert box is not None, f"#{chart_id} has no <svg>"
        assert box["width"] > 0 and box["height"] > 0 and box["shapes"] > 0, (chart_id, box)
    data = browser.execute_script("return JSON.parse(document.getElementById('audit-data').textContent);")
    assert data["columns"] == list(expected[0]) and data["rows"] == expected
    assert {r["key"] for r in expected} == {"1 diamond", f"2 {HOSTILE}", "total"} and expected[-1]["missing"] == "1"

    # The experiment named <script>...</script> is text on the page, never a script that ran.
    assert browser.execute_script("return document.scripts.length;") == 1
    assert HOSTILE in browser.execute_script("return document.body.innerText;")
    assert "2026-11-20 00:00:00 .. 2026-11-21 00:00:00 UTC" in browser.title


def test_an_empty_period_loads_and_says_so(browser, workdir):
    page = workdir / "empty.html"
    audit_cli(workdir, "--format", "html", "--output", str(page),
              period=("--since", "2020-01-01", "--until", "2020-01-02"))
    browser.get_log("browser")
    browser.get(page.resolve().as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert "No settled elements in this period" in browser.execute_script("return document.body.innerText;")
    for chart_id in CHART_IDS:
        assert browser.execute_script(CHART_BOX, chart_id) is None
        assert browser.execute_script(f"return document.getElementById('{chart_id}').innerText;").strip()
