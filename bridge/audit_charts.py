"""The audit report's charts: matplotlib figures rendered to inline SVG text at build time (no files, no pyplot).

Each chart function returns one `<svg>` element as text, or None when it has
nothing to draw (the page then says so instead of showing an empty plot).
matplotlib is imported by this module only, and bridge.audit_html imports this
module inside `render`: other commands never pay matplotlib's import time.

The SVG is made to sit inline in one HTML page: text stays text
(`svg.fonttype = "none"`, small, searchable, escaped by matplotlib's XML
writer), mathtext is off (an experiment named "a$b" is drawn as written, not
parsed), the XML prologue, namespace URLs and metadata are dropped (nothing in
the page names an external URL), and each chart hashes its clip and marker ids
with its own salt, so ids never collide between the charts of one page.
"""

from __future__ import annotations

import functools
import io
import re
from collections import defaultdict

import matplotlib
import matplotlib.dates as mdates
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from bridge.audit import Element, Figures, failure_reason

TIMELINE_CAP = 2000  # elements drawn in the timeline: the most recent ones
BAR_CAP = 25  # groups drawn in a bar chart; the rest are summed in one bar
LABEL_CHARS = 40
RC = {"svg.fonttype": "none", "text.parse_math": False, "font.size": 9}
_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
# Slurm's final states (sacct(1) "JOB STATE CODES"); anything else is drawn as "other".
STATE_COLOURS = {
    "COMPLETED": "#2ca02c", "FAILED": "#d62728", "TIMEOUT": "#ff7f0e", "OUT_OF_MEMORY": "#9467bd",
    "CANCELLED": "#7f7f7f", "NODE_FAIL": "#8c564b", "PREEMPTED": "#e377c2", "BOOT_FAIL": "#bcbd22",
    "DEADLINE": "#17becf",
}
OTHER_COLOUR = "#1f77b4"
USED_COLOUR, WASTED_COLOUR = "#4c78a8", "#e45756"
EFFICIENCIES = ("cpu", "memory", "time")


def state_word(state: str | None) -> str:
    """The state's first word without sacct's '+' ("CANCELLED by 0" -> "CANCELLED"); "unknown" when None."""
    return state.split()[0].rstrip("+") if state and state.split() else "unknown"


def drawn_state(element: Element) -> str:
    """The state the timeline colours: the audit's failure reason's (a memory kill Slurm 22.05 accounts as
    FAILED 0:9 is OUT_OF_MEMORY by the poller's verdict, as in the failures table), else Slurm's."""
    reason = failure_reason(element.state, element.exit_code, element.verdict)
    return state_word(reason if reason is not None else element.state)


def short(label: str) -> str:
    """A label cut to LABEL_CHARS for an axis (the tables keep it whole)."""
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def to_svg(figure: Figure, name: str) -> str:
    """The figure as one inline <svg> element: ids salted with `name`, no prologue, namespaces or metadata."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", metadata=_METADATA)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # An HTML parser puts <svg> and xlink:href in their namespaces itself: the URLs are not needed.
    text = re.sub(r' xmlns(:xlink)?="[^"]*"', "", text, count=2)
    return re.sub(r'<g id="[^"]*">', "<g>", text)  # matplotlib's artist ids: unreferenced, repeated per chart


def styled(chart):
    """Draw the chart under RC (text stays text, no mathtext): both are read when a figure's texts are made."""
    @functools.wraps(chart)
    def draw(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return chart(*args, **kwargs)
    return draw


def timeline_elements(elements: list[Element]) -> tuple[list[Element], int]:
    """The elements the timeline draws (the TIMELINE_CAP most recent by End) and how many had Start and End."""
    drawable = sorted((e for e in elements if e.start is not None and e.end is not None),
                      key=lambda e: (e.end, e.start, e.element_id))
    return drawable[-TIMELINE_CAP:], len(drawable)


@styled
def timeline(shown: list[Element]) -> str | None:
    """Elements per node from Start to End, coloured by Slurm's state."""
    if not shown:
        return None
    nodes = sorted({e.node or "-" for e in shown})
    row = {node: i for i, node in enumerate(nodes)}
    figure = Figure(figsize=(10, min(30.0, 1.6 + 0.3 * len(nodes))), layout="constrained")
    axes = figure.add_subplot()
    by_state: dict[str, list[Element]] = defaultdict(list)
    for e in shown:
        by_state[drawn_state(e)].append(e)
    for state in sorted(by_state, key=lambda s: (-len(by_state[s]), s)):
        group = by_state[state]
        colour = STATE_COLOURS.get(state, OTHER_COLOUR)
        # One collection of rectangles per state (an artist per bar costs a second for 2,000 of them).
        # A short element is thinner than a pixel over a long period: its edge keeps it visible.
        starts, ends = mdates.date2num([e.start for e in group]), mdates.date2num([e.end for e in group])
        rows = [row[e.node or "-"] for e in group]
        boxes = [[(x0, y - 0.3), (x1, y - 0.3), (x1, y + 0.3), (x0, y + 0.3)] for x0, x1, y in zip(starts, ends, rows)]
        axes.add_collection(PolyCollection(boxes, facecolors=colour, edgecolors=colour, linewidths=0.5, alpha=0.8,
                                           label=f"{state} ({len(group)})"))
    axes.autoscale_view()
    axes.set_yticks(range(len(nodes)), labels=[short(n) for n in nodes])
    axes.xaxis_date()
    axes.set_ylim(-0.6, len(nodes) - 0.4)
    axes.invert_yaxis()
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("node")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return to_svg(figure, "timeline")


@styled
def core_hours(groups: list[Figures], dimension: str) -> str | None:
    """Core-hours per group (largest first), the wasted part (not COMPLETED in Slurm) stacked in red."""
    if not any(g.core_hours > 0 for g in groups):
        return None
    top, rest = groups[:BAR_CAP], groups[BAR_CAP:]
    labels = [short(g.key) for g in top]
    used = [g.core_hours - g.wasted_core_hours for g in top]
    wasted = [g.wasted_core_hours for g in top]
    if rest:
        labels.append(f"{len(rest)} others")
        used.append(sum(g.core_hours - g.wasted_core_hours for g in rest))
        wasted.append(sum(g.wasted_core_hours for g in rest))
    figure = Figure(figsize=(7, 1.2 + 0.28 * len(labels)), layout="constrained")
    axes = figure.add_subplot()
    rows = range(len(labels))
    axes.barh(rows, used, color=USED_COLOUR, label="completed")
    axes.barh(rows, wasted, left=used, color=WASTED_COLOUR, label="wasted (not completed)")
    axes.set_yticks(rows, labels=labels)
    axes.invert_yaxis()
    axes.set_xlabel("core-hours")
    axes.set_ylabel(dimension)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return to_svg(figure, f"core-hours-{dimension}")


def efficiencies(elements: list[Element]) -> dict[str, list[float]]:
    """Per element: cpu = TotalCPU / core time, memory = MaxRSS / ReqMem, time = Elapsed / Timelimit."""
    out: dict[str, list[float]] = {name: [] for name in EFFICIENCIES}
    for e in elements:
        core = e.core_seconds
        if e.total_cpu_s is not None and core:
            out["cpu"].append(e.total_cpu_s / core)
        if e.max_rss_kb is not None and e.req_mem_mb:
            out["memory"].append(e.max_rss_kb / (e.req_mem_mb * 1024))
        if e.elapsed_s is not None and e.timelimit_min:
            out["time"].append(e.elapsed_s / (e.timelimit_min * 60))
    return out


@styled
def efficiency_histograms(values: dict[str, list[float]]) -> str | None:
    """One histogram per efficiency, 5 % bins; values above 100 % fall in the last bin."""
    if not any(values.values()):
        return None
    figure = Figure(figsize=(10, 2.8), layout="constrained")
    edges = [i / 20 for i in range(21)]
    for i, name in enumerate(EFFICIENCIES):
        axes = figure.add_subplot(1, len(EFFICIENCIES), i + 1)
        data = np.clip(np.asarray(values.get(name, []), dtype=float), 0.0, 1.0)  # a list makes hist() slow
        axes.set_title(f"{name} efficiency (n={len(data)})")
        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_xlim(0, 1)
        axes.set_xlabel("used / allocated")
        if len(data):
            axes.hist(data, bins=edges, color=USED_COLOUR)
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
        if i == 0:
            axes.set_ylabel("elements")
    return to_svg(figure, "efficiency")
