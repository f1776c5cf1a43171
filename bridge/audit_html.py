"""An audit as one self-contained HTML page that works offline (pure: text in, text out).

`render(main, elements)` gives the page `beat-bridge audit --format html`
writes: the period, the figures table (every CSV column), a timeline of
elements per node coloured by Slurm's state, core-hours by author and by
queue, CPU/memory/time efficiency histograms, the failures by reason, and,
when given, the right-sizing advice and the reconciliation summary.

Offline and safe by construction: the charts are matplotlib's SVG, drawn at
build time and put inline (bridge.audit_charts); the page has no script to
run, names no URL, and its Content-Security-Policy forbids any fetch. Every
value that enters the page goes through html.escape; the CSV rows are
embedded as JSON in `<script type="application/json" id="audit-data">` with
`<`, `>` and `&` written as \\u escapes, so no value can end that element.
Each chart sits in an element with a stable id (CHART_IDS) for tests and
readers.
"""

from __future__ import annotations

import json
from html import escape

from bridge.audit import Audit, Element, audit
from bridge.audit_format import COLUMNS, rows

CHART_IDS = ("chart-timeline", "chart-core-hours-author", "chart-core-hours-queue", "chart-efficiency")
TABLE_CAP = 1000  # rows of a generic table (advice, divergences) shown; the rest are counted
_NUMERIC = set(COLUMNS[2:-1])
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.5em}h3{font-size:1em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold}.scroll{overflow-x:auto}td.n,td.key{white-space:nowrap}td.wide{min-width:28em}
.chart svg{max-width:100%;height:auto}
.note,.empty{color:#666;font-size:.9em}.empty{font-style:italic}
.clean{color:#2a7a2a}.dirty{color:#b22}pre{background:#f6f6f6;padding:.6em;overflow:auto}
"""


def _text(value: object) -> str:
    """A generic value as escaped cell text: None empty, floats to 6 digits, containers as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, float):
        value = f"{value:.6g}"
    elif isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, sort_keys=True, default=str)
    return escape(str(value))


def _cell(column: str, value: object, numeric: set[str], wide: set[str]) -> str:
    css = "n" if column in numeric else "wide" if column in wide else "key" if column == "key" else ""
    return f'<td class="{css}">{_text(value)}</td>' if css else f"<td>{_text(value)}</td>"


def _table(columns: list[str], records: list[dict], *, numeric: set[str] = frozenset(),
           wide: set[str] = frozenset(), total: bool = False) -> str:
    """An HTML table of records under the given columns (the last row bold when `total`), scrolling sideways."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for i, record in enumerate(records):
        cells = "".join(_cell(c, record.get(c), numeric, wide) for c in columns)
        css = ' class="total"' if total and i == len(records) - 1 else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _columns(records: list[dict], first: tuple[str, ...] = ()) -> list[str]:
    """The keys of all records, `first` ones first, the others in the order they first appear."""
    seen = dict.fromkeys(first)
    for record in records:
        seen.update(dict.fromkeys(record))
    return list(seen)


def _capped_table(records: list[dict], first: tuple[str, ...] = ()) -> str:
    shown = records[:TABLE_CAP]
    note = f'<p class="note">{len(shown)} of {len(records)} rows shown.</p>' if len(records) > len(shown) else ""
    return _table(_columns(shown, first), shown) + note


def _chart(chart_id: str, svg: str | None, empty: str) -> str:
    inner = svg if svg is not None else f'<p class="empty">{escape(empty)}</p>'
    return f'<div class="chart" id="{chart_id}">{inner}</div>'


def embedded_json(value: object) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' as \\u escapes (JSON.parse gives them back)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _period(main: Audit) -> str:
    return f"{main.since:%Y-%m-%d %H:%M:%S} .. {main.until:%Y-%m-%d %H:%M:%S} UTC"


def _header(main: Audit) -> str:
    t = main.total
    summary = (f"{t.elements} settled elements, {t.core_hours:.3f} core-hours, of which "
               f"{t.wasted_core_hours:.3f} wasted; grouped by {main.by}.")
    if t.missing:
        summary += f" {t.missing} element(s) without Slurm's figures (sacct never settled them): counted, in no sum."
    return (f"<header><h1>Slurm audit of BEAT experiments</h1>"
            f"<p>Period: <strong>{escape(_period(main))}</strong> (elements that ended in it).</p>"
            f"<p>{escape(summary)}</p></header>")


def _figures(main: Audit) -> str:
    table = _table(list(COLUMNS), rows(main), numeric=_NUMERIC, wide={"failures"}, total=True)
    return f'<section id="figures"><h2>Figures by {escape(main.by)}</h2>{table}</section>'


def _timeline(elements: list[Element]) -> str:
    from bridge import audit_charts

    shown, drawable = audit_charts.timeline_elements(elements)
    notes = []
    if len(shown) < drawable:
        notes.append(f"The {len(shown)} most recent of {drawable} elements are drawn.")
    if drawable < len(elements):
        notes.append(f"{len(elements) - drawable} element(s) without Start or End are not drawn.")
    note = f'<p class="note">{escape(" ".join(notes))}</p>' if notes else ""
    chart = _chart("chart-timeline", audit_charts.timeline(shown), "No element with a Start and an End to draw.")
    return f'<section id="timeline"><h2>Elements per node, by Slurm state</h2>{chart}{note}</section>'


def _core_hours(main: Audit, elements: list[Element], dimension: str, title: str) -> str:
    from bridge import audit_charts

    grouped = main if main.by == dimension else audit(elements, dimension, main.since, main.until)
    svg = audit_charts.core_hours(grouped.groups, dimension)
    chart = _chart(f"chart-core-hours-{dimension}", svg, f"No core-hours recorded by {dimension} in this period.")
    return f'<section id="core-hours-{dimension}"><h2>{escape(title)}</h2>{chart}</section>'


def _efficiency(elements: list[Element]) -> str:
    from bridge import audit_charts

    values = audit_charts.efficiencies(elements)
    chart = _chart("chart-efficiency", audit_charts.efficiency_histograms(values),
                   "No element has the figures an efficiency needs.")
    note = ('<p class="note">Per element: CPU = TotalCPU / (AllocCPUS &#215; Elapsed), memory = MaxRSS of the batch '
            "step / ReqMem, time = Elapsed / Timelimit. Values above 100 % are counted in the last bin.</p>")
    return f'<section id="efficiency"><h2>Efficiency per element</h2>{chart}{note}</section>'


def _failures(main: Audit) -> str:
    failures = main.total.failures
    if not failures:
        return '<section id="failures"><h2>Failures by reason</h2><p class="empty">No failure.</p></section>'
    records = []
    for reason, count in failures.items():
        where = [f"{f.key} ({f.failures[reason]})" for f in main.groups if reason in f.failures]
        records.append({"reason": reason, "count": count, "groups": ", ".join(where)})
    table = _table(["reason", "count", "groups"], records, numeric={"count"}, wide={"groups"})
    return f'<section id="failures"><h2>Failures by reason</h2>{table}</section>'


def _is_records(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _extras(report: dict, shown: tuple[str, ...]) -> list[str]:
    """A report's other non-empty keys: lists of dicts as tables under their name, anything else as text."""
    parts = []
    for key, value in report.items():
        if key in shown or value is None or value == "" or value == [] or value == {}:
            continue
        if _is_records(value):
            parts.append(f"<h3>{escape(str(key))}</h3>{_capped_table(value)}")
        else:
            parts.append(f"<p><strong>{escape(str(key))}</strong>: {_text(value)}</p>")
    return parts


def _advice(advice: dict) -> str:
    """The advice dict, generically: "rows" as a table, other lists of dicts as tables, "toml" preformatted."""
    parts = ['<section id="advice"><h2>Right-sizing advice</h2>']
    records = list(advice.get("rows") or [])
    parts.append(_capped_table(records) if records else '<p class="empty">No element to advise on.</p>')
    parts += _extras(advice, ("rows", "toml"))
    if advice.get("toml"):
        parts.append("<p>Suggested queues.toml change (never applied automatically):</p>"
                     f"<pre>{escape(str(advice['toml']))}</pre>")
    return "".join(parts) + "</section>"


def _reconciliation(reconciliation: dict) -> str:
    """The reconciliation dict, generically: its verdict, divergences counted per kind and listed, the rest."""
    divergences = list(reconciliation.get("divergences") or [])
    clean = bool(reconciliation.get("clean", not divergences))
    verdict = ("clean: the database and Slurm agree" if clean
               else f"{len(divergences)} divergence(s)" if divergences else "not clean")
    parts = ['<section id="reconciliation"><h2>Reconciliation</h2>',
             f'<p class="{"clean" if clean else "dirty"}">{escape(verdict)}</p>']
    if divergences:
        counts: dict[str, int] = {}
        for d in divergences:
            kind = str(d.get("kind", "-"))
            counts[kind] = counts.get(kind, 0) + 1
        parts.append(_table(["kind", "count"], [{"kind": k, "count": n} for k, n in sorted(counts.items())],
                            numeric={"count"}))
        parts.append(_capped_table(divergences, first=("kind",)))
    parts += _extras(reconciliation, ("clean", "divergences"))
    return "".join(parts) + "</section>"


def render(main: Audit, elements: list[Element], *, advice: dict | None = None,
           reconciliation: dict | None = None) -> str:
    """The page: `main` is the audit grouped by the user's --by, `elements` the period's elements it was made of."""
    body = [_header(main), _figures(main)]
    if not main.total.elements:
        body.append('<p class="empty" id="no-elements">No settled elements in this period: nothing to chart.</p>')
    body += [_timeline(elements), _core_hours(main, elements, "author", "Core-hours by author (BEAT user)"),
             _core_hours(main, elements, "queue", "Core-hours by queue"), _efficiency(elements), _failures(main)]
    if advice is not None:
        body.append(_advice(advice))
    if reconciliation is not None:
        body.append(_reconciliation(reconciliation))
    data = embedded_json({"columns": list(COLUMNS), "rows": rows(main)})
    title = escape(f"Audit {_period(main)}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>{title}</title><style>{_STYLE}</style></head>\n<body>\n'
            + "\n".join(body)
            + f'\n<script type="application/json" id="audit-data">{data}</script>\n</body></html>\n')
