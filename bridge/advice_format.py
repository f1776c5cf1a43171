"""Right-sizing advice as text: a table and the suggested queues.toml lines, CSV or JSON (pure).

CSV columns, one row per queue and algorithm: queue, algorithm, elements (the
p95s are over those with figures), p95_rss_mb, max_rss_mb, memory_limit_mb,
p95_elapsed_min, max_elapsed_min, time_limit_min, out_of_memory, timed_out.
JSON: {"rows": [...], "proposals": [{queue, key, current, proposed, would_kill,
elements, why}], "unknown_queues": [...], "toml": "..."}.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields

from bridge.advice import Advice, UsageRow

COLUMNS = tuple(f.name for f in fields(UsageRow))


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def to_table(advice: Advice) -> str:
    if not advice.rows:
        return "no settled elements in this period: nothing to advise\n"
    head = ["queue", "algorithm", "elements", "p95 MaxRSS MB", "limit MB", "p95 elapsed min", "limit min",
            "OOM", "TIMEOUT"]
    lines = [head] + [[r.queue, r.algorithm, str(r.elements), _number(r.p95_rss_mb), _number(r.memory_limit_mb),
                       _number(r.p95_elapsed_min), _number(r.time_limit_min), str(r.out_of_memory),
                       str(r.timed_out)] for r in advice.rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
            for line in lines]
    text.append("")
    if advice.proposals:
        text.append("# suggested queues.toml changes (never applied automatically; edit queues.toml, then "
                    "`beat-bridge queues check` and `queues sync`)")
        text.append(advice.toml().rstrip())
    else:
        text.append("no change suggested: every queue's limits fit what its elements used")
    for queue in advice.unknown_queues:
        text.append(f"queue {queue!r} is in the snapshots but no longer in queues.toml: no advice for it")
    return "\n".join(text) + "\n"


def to_csv(advice: Advice) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in advice.rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(r).items()})
    return buffer.getvalue()


def to_json(advice: Advice) -> str:
    return json.dumps(advice.to_dict(), indent=2) + "\n"
