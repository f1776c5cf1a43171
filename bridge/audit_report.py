"""One audit report from an open App: the command's and the demo's one path (snapshots, sacct fill, text)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReportRequest:
    """What `beat-bridge audit` was asked for."""

    since: datetime
    until: datetime
    by: str = "experiment"
    fmt: str = "table"  # table | csv | json | html
    experiment: int | None = None
    advise: bool = False
    sacct: bool = True  # ask sacct for elements whose snapshot lacks figures
    reconcile: bool = True  # html: a reconcile check's summary in the page (it reads squeue and sacct)


def build(app, request: ReportRequest) -> tuple[str, str | None]:
    """The report's text, and a note for stderr (None: nothing to say)."""
    from bridge.audit_query import fill_missing, lacking, load

    with app.sessions() as session:
        elements = load(session, request.since, request.until, request.experiment, times=request.fmt == "html")
    note = None
    if request.sacct and any(lacking(e) for e in elements):
        elements, filled = fill_missing(elements, app.client, request.since)
        if filled.error:
            note = f"sacct could not fill {filled.asked} element(s) without figures: {filled.error}"
    return _render(app, request, elements), note


def _reconciliation(app) -> dict:
    """`beat-bridge reconcile`'s summary, without --apply (it counts as one of its checks of lost splits)."""
    from bridge.reconcile_run import check

    with app.write_sessions() as session:
        return check(session, app.client, app.config).to_dict()


def _render(app, request: ReportRequest, elements) -> str:
    from bridge import advice_format, audit_format
    from bridge.advice import advise
    from bridge.audit import audit

    if request.fmt == "html":
        from bridge.audit_html import render

        report = audit(elements, request.by, request.since, request.until)
        return render(report, elements, advice=advise(elements, app.config.queues).to_dict(),
                      reconciliation=_reconciliation(app) if request.reconcile else None)
    if request.advise:
        writers = {"table": advice_format.to_table, "csv": advice_format.to_csv, "json": advice_format.to_json}
        return writers[request.fmt](advise(elements, app.config.queues))
    writers = {"table": audit_format.to_table, "csv": audit_format.to_csv, "json": audit_format.to_json}
    return writers[request.fmt](audit(elements, request.by, request.since, request.until))
