"""An audit as text: an aligned table for a terminal, CSV and JSON for scripts (pure).

CSV columns, one row per group and a last row whose key is "total":

    by                 the dimension grouped by (experiment, block, author, ...)
    key                the group's name ("<id> <name>" for experiments, "<id> <name>/<block>")
    elements           settled array elements
    completed          of them, ended COMPLETED in Slurm
    not_completed      ended otherwise (FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, CANCELLED, ...)
    missing            without Slurm's figures (sacct never settled them): in no sum
    core_hours         sum AllocCPUS x Elapsed, hours
    wasted_core_hours  core_hours of the not_completed elements
    cpu_efficiency     sum TotalCPU / core time (0..1; empty: nothing to divide)
    memory_efficiency  sum of the batch step's MaxRSS / sum ReqMem
    time_efficiency    sum Elapsed / sum Timelimit
    wait_median_s      Start - Submit, median, seconds
    wait_p95_s         Start - Submit, 95th percentile (nearest rank), seconds
    failures           "reason=count" joined by "; " ("FAILED exit 3=2; TIMEOUT=1")

JSON has the same names, numbers as numbers (null where empty), `failures` as
an object, the groups under "groups" and the total under "total".
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict

from bridge.audit import Audit, Figures

COLUMNS = ("by", "key", "elements", "completed", "not_completed", "missing", "core_hours", "wasted_core_hours",
           "cpu_efficiency", "memory_efficiency", "time_efficiency", "wait_median_s", "wait_p95_s", "failures")
_DIGITS = {"core_hours": 6, "wasted_core_hours": 6, "cpu_efficiency": 4, "memory_efficiency": 4,
           "time_efficiency": 4, "wait_median_s": 1, "wait_p95_s": 1}


def _time(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def _failures(failures: dict[str, int]) -> str:
    return "; ".join(f"{reason}={count}" for reason, count in failures.items())


def row(audit: Audit, figures: Figures) -> dict[str, str]:
    """One CSV row: every value as the text CSV prints."""
    values = asdict(figures)
    out = {"by": audit.by}
    for name in COLUMNS[1:]:
        value = values[name]
        if name == "failures":
            out[name] = _failures(value)
        elif value is None:
            out[name] = ""
        elif name in _DIGITS:
            out[name] = f"{value:.{_DIGITS[name]}f}"
        else:
            out[name] = str(value)
    return out


def rows(audit: Audit) -> list[dict[str, str]]:
    """The CSV rows: each group, then the total."""
    return [row(audit, f) for f in [*audit.groups, audit.total]]


def to_csv(audit: Audit) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(audit))
    return buffer.getvalue()


def to_dict(audit: Audit) -> dict:
    """The JSON object: period, dimension, groups and total."""
    return {"since": _time(audit.since), "until": _time(audit.until), "by": audit.by,
            "groups": [asdict(f) for f in audit.groups], "total": asdict(audit.total)}


def to_json(audit: Audit) -> str:
    return json.dumps(to_dict(audit), indent=2) + "\n"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.0f}s"
    return f"{value / 60:.1f}m" if value < 7200 else f"{value / 3600:.1f}h"


TABLE_HEADINGS = ("elements", "done", "not done", "core-h", "wasted", "cpu eff", "mem eff", "time eff",
                  "wait p50", "wait p95")


def _cells(f: Figures) -> list[str]:
    return [str(f.elements), str(f.completed), str(f.not_completed), f"{f.core_hours:.3f}",
            f"{f.wasted_core_hours:.3f}", _percent(f.cpu_efficiency), _percent(f.memory_efficiency),
            _percent(f.time_efficiency), _seconds(f.wait_median_s), _seconds(f.wait_p95_s)]


def _align(lines: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            .rstrip() for line in lines]


def to_table(audit: Audit) -> str:
    """The figures aligned for a terminal, then the failures by reason and what is missing."""
    head = f"audit {_time(audit.since)} .. {_time(audit.until)} UTC, by {audit.by}"
    if not audit.total.elements:
        return f"{head}\nno settled elements in this period\n"
    lines = [[audit.by, *TABLE_HEADINGS]] + [[f.key, *_cells(f)] for f in audit.groups]
    lines.append(["total", *_cells(audit.total)])
    text = [head, *_align(lines)]
    if audit.total.failures:
        text.append("")
        failures = [["failures by reason", "elements", *(["in"] if len(audit.groups) > 1 else [])]]
        for reason, count in audit.total.failures.items():
            where = [f.key for f in audit.groups if reason in f.failures]
            failures.append([reason, str(count), *([", ".join(where)[:60]] if len(audit.groups) > 1 else [])])
        text.extend(_align(failures))
    if audit.total.missing:
        text.append(f"\n{audit.total.missing} element(s) without Slurm's figures (sacct never settled them): "
                    "counted, in no sum")
    return "\n".join(text) + "\n"
