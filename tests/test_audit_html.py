"""The HTML audit report, read as text: escaped, offline, its embedded data the CSV's, sane when empty or huge.

The same page in a real browser: tests/test_audit_browser.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

from audit_samples import SINCE, UNTIL, element, mixed

from bridge import audit_charts
from bridge.audit import audit
from bridge.audit_format import COLUMNS, rows, to_csv
from bridge.audit_html import CHART_IDS, render

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(2)>'
MATH = "a$b$ $\\frac{$"  # drawn as written: as matplotlib's mathtext it would be a parse error


class Page(HTMLParser):
    """The tags, ids, text of each chart element and the #audit-data script's text of one page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter = Counter()
        self.ids: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.scripts: list[dict] = []
        self.data: str | None = None
        self.text: list[str] = []
        self._in_data = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        values = dict(attrs)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if "id" in values:
            self.ids.append(values["id"])
        if tag == "script":
            self.scripts.append(values)
            self._in_data = values.get("id") == "audit-data"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data = (self.data or "") + data
        else:
            self.text.append(data)


def page_of(elements, by="experiment", **extra) -> tuple[str, Page]:
    text = render(audit(elements, by, SINCE, UNTIL), elements, **extra)
    return text, Page(text)


def chart(text: str, chart_id: str) -> str:
    """The inner HTML of one chart's element (charts do not nest divs)."""
    match = re.search(rf'<div class="chart" id="{chart_id}">(.*?)</div>', text, re.S)
    assert match, f"no element #{chart_id}"
    return match.group(1)


def test_every_value_that_enters_the_page_is_escaped():
    elements = [element(experiment_name=HOSTILE, author=ATTRIBUTE, node="<b>n1</b>", queue="q&<i>",
                        block_name="</script><script>alert(3)</script>", state="FAILED", exit_code="3:0"),
                element(element_id="100_1", author=MATH)]
    advice = {"rows": [{"queue": HOSTILE, "p95": 1.5}], "proposals": [{"why": ATTRIBUTE}],
              "toml": f"[queues.x]\n# </pre>{HOSTILE}"}
    reconciliation = {"clean": False, "divergences": [{"kind": HOSTILE, "element": ATTRIBUTE}],
                      "checked": {"note": HOSTILE}}
    for by in ("experiment", "block", "author", "node", "queue"):
        text, page = page_of(elements, by, advice=advice, reconciliation=reconciliation)
        assert HOSTILE not in text and ATTRIBUTE not in text and "<b>" not in text and "<i>" not in text
        assert page.tags["script"] == 1 and page.scripts == [{"type": "application/json", "id": "audit-data"}]
        assert not page.tags["img"] and not page.tags["b"] and not page.tags["i"]
        assert not [a for a in page.attrs if a[1].startswith("on")]
        shown = "".join(page.text)
        assert HOSTILE in shown and ATTRIBUTE in shown  # escaped, yet read back as written
        assert f">{MATH}</text>" in chart(text, "chart-core-hours-author")
        assert json.loads(page.data)["rows"] == rows(audit(elements, by, SINCE, UNTIL))


def test_the_page_names_no_external_url_and_fetches_nothing():
    text, page = page_of(mixed(300), advice={"rows": [], "toml": ""}, reconciliation={"clean": True})
    assert "http://" not in text and "https://" not in text
    for tag, name, value in page.attrs:
        if name in ("src", "href", "xlink:href", "action", "srcset"):
            assert value.startswith("#") or value.startswith("data:"), (tag, name, value)
    assert set(page.tags) & {"iframe", "object", "embed", "img", "audio", "video"} == set()
    assert page.tags["link"] == 1  # the data: favicon, so a browser asks for no favicon file
    assert re.findall(r"url\((?!#)", text) == [] and "@import" not in text
    assert "default-src 'none'" in text  # the CSP: even a mistake could fetch nothing


def test_the_embedded_data_equals_the_csv_rows():
    elements = mixed(500)
    for by in ("experiment", "author", "node"):
        main = audit(elements, by, SINCE, UNTIL)
        data = json.loads(Page(render(main, elements)).data)
        with_csv = list(csv.DictReader(io.StringIO(to_csv(main))))
        assert data == {"columns": list(COLUMNS), "rows": rows(main)}
        assert data["rows"] == with_csv and len(with_csv) == len(main.groups) + 1


def test_each_chart_is_an_inline_svg_and_ids_are_unique():
    text, page = page_of(mixed(300))
    for chart_id in CHART_IDS:
        inner = chart(text, chart_id)
        assert inner.startswith("<svg") and inner.rstrip().endswith("</svg>") and "<path" in inner, chart_id
    assert [i for i, n in Counter(page.ids).items() if n > 1] == []
    assert "bob" in chart(text, "chart-core-hours-author") and "long" in chart(text, "chart-core-hours-queue")
    assert "n2" in chart(text, "chart-timeline") and "TIMEOUT" in chart(text, "chart-timeline")


def test_an_empty_period_renders_a_page_that_says_so():
    text, page = page_of([], advice={"rows": [], "toml": ""}, reconciliation={"clean": True, "divergences": []})
    assert "No settled elements in this period" in text
    for chart_id in CHART_IDS:
        assert chart(text, chart_id).startswith('<p class="empty">'), chart_id
    assert "<svg" not in text
    assert [r["key"] for r in json.loads(page.data)["rows"]] == ["total"]
    assert "clean: the database and Slurm agree" in "".join(page.text)


def test_charts_without_data_say_so_instead_of_an_empty_plot():
    # Sacct never settled these: no state, no figures, no Start or End.
    lacking = [element(element_id=f"9_{i}", state=None, exit_code=None, alloc_cpus=None, elapsed_s=None,
                       max_rss_kb=None, total_cpu_s=None, start=None, end=None, timelimit_min=None)
               for i in range(3)]
    text, page = page_of(lacking)
    for chart_id in CHART_IDS:
        assert chart(text, chart_id).startswith('<p class="empty">'), chart_id
    shown = "".join(page.text)
    assert "3 element(s) without Start or End are not drawn" in shown
    assert "3 element(s) without Slurm's figures" in shown


def test_efficiencies_are_per_element_ratios():
    e = element(alloc_cpus=2, elapsed_s=100, total_cpu_s=50.0, max_rss_kb=25 * 1024, req_mem_mb=100,
                timelimit_min=10)
    assert audit_charts.efficiencies([e, e._replace(req_mem_mb=None, timelimit_min=0, total_cpu_s=None)]) == {
        "cpu": [0.25], "memory": [0.25], "time": [100 / 600]}


def test_the_timeline_colours_a_memory_kill_as_the_failures_table_names_it():
    killed = element(state="FAILED", exit_code="0:9", verdict="failed:out_of_memory")
    text, _ = page_of([killed, element(element_id="100_1", state="CANCELLED by 0", exit_code="0:15")])
    legend = re.findall(r">([A-Z_]+ \(\d+\))</text>", chart(text, "chart-timeline"))
    assert sorted(legend) == ["CANCELLED (1)", "OUT_OF_MEMORY (1)"]
    assert "<td>OUT_OF_MEMORY</td>" in text


def test_the_timeline_draws_the_most_recent_elements_when_capped():
    elements = [element(element_id=f"1_{i}", end=SINCE + timedelta(minutes=i + 2)) for i in range(2100)]
    shown, drawable = audit_charts.timeline_elements(elements[::-1])
    assert drawable == 2100 and len(shown) == audit_charts.TIMELINE_CAP
    assert {e.element_id for e in shown} == {f"1_{i}" for i in range(100, 2100)}


def test_a_period_of_100000_elements_stays_a_reasonable_file():
    elements = mixed(100_000)
    text, page = page_of(elements)
    assert len(text.encode()) < 3_000_000
    assert "The 2000 most recent of" in text
    assert json.loads(page.data)["rows"][-1]["elements"] == "100000"


def test_reconciliation_counts_divergences_per_kind():
    divergences = [{"kind": "orphan", "job": "7_1"}, {"kind": "lost", "split": 3}, {"kind": "orphan", "job": "7_2"}]
    text, _ = page_of([element()], reconciliation={"clean": False, "divergences": divergences,
                                                   "checked": {"arrays": 2}})
    section = text[text.index('<section id="reconciliation">'):]
    assert "3 divergence(s)" in section
    assert '<tr><td>lost</td><td class="n">1</td></tr><tr><td>orphan</td><td class="n">2</td></tr>' in section
    assert "<th>kind</th><th>job</th><th>split</th>" in section and "7_2" in section


def test_matplotlib_is_imported_only_when_a_page_is_rendered():
    code = ("import sys, bridge.cli, bridge.cli_audit, bridge.audit_html; "
            "print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


def test_a_reconcile_report_renders_whole_its_error_and_watched_splits_included():
    from bridge.reconcile_facts import Divergence, ReconcileReport

    report = ReconcileReport(deployment="dev", window_start=SINCE, error="sacct: timed out after 60 s",
                             watching=[Divergence("lost", "missing from Slurm 1 time(s)", split_id=4, slurm_id="7_1")])
    text, page = page_of([element()], reconciliation=report.to_dict())
    section = text[text.index('<section id="reconciliation">'):]
    assert '<p class="dirty">not clean</p>' in section
    assert "<strong>error</strong>: sacct: timed out after 60 s" in section
    assert "<h3>watching</h3>" in section and "<td>7_1</td>" in section
