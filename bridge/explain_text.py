"""`experiments show` as text: bridge.explain's dict, one line per fact, every name escaped.

Pure. Every value that came from outside (names, errors, log lines, node names,
paths, Slurm's reasons) goes through bridge.values.printable, so a control
character in a name or a log cannot move the terminal's cursor. A block with
more than FOLD splits lists only its splits that did not complete (the JSON
lists all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.values import printable

FOLD = 20  # a block with more splits lists only those not completed
INDENT = "    "


def render(view: Mapping[str, Any]) -> list[str]:
    """The experiment's lines: header, why, Slurm's note, then each block and its splits."""
    lines = [_header(view)]
    why = view["why"]
    if why is not None:
        lines.append(f"why: block {_q(why['block'])} split {why['split']}{_where(why)} failed: "
                     f"{_p(why['error']) if why['error'] else 'no error recorded'}")
    if view["slurm"]["error"]:
        lines.append(f"Slurm not read (pending reasons unknown): {_p(view['slurm']['error'])}")
    for block in view["blocks"]:
        lines += _block(block)
    return lines


def _header(view: Mapping[str, Any]) -> str:
    times = ", ".join(f"{label} {view[key]}" for label, key in
                      (("created", "created"), ("started", "started"), ("ended", "ended")) if view[key])
    return (f"experiment {view['id']} {_p(view['name'])}: {view['status']} ({view['status_name']}), "
            f"{view['blocks_done']}/{view['blocks_total']} blocks done; {times} (UTC)")


def _block(block: Mapping[str, Any]) -> list[str]:
    counts = ", ".join(f"{n} {letter}" for letter, n in block["counts"].items()) or "no splits"
    queue = f"queue {_q(block['queue'])} (partition {_q(block['partition'])})" if block["queue"] else "no queue"
    after = f", after {', '.join(_q(name) for name in block['depends_on'])}" if block["depends_on"] else ""
    lines = [f"block {_q(block['name'])}: {block['status']} ({block['status_name']}), {queue}, "
             f"{block['required_slots']} slots{after}; splits: {counts}"]
    job = block["job"]
    if job is not None:
        lines.append(INDENT + _job(job))
    splits = block["splits"]
    shown = splits if len(splits) <= FOLD else [s for s in splits if s["status"] != "C"]
    for split in shown:
        lines += [INDENT + line for line in split_lines(split)]
    if len(shown) < len(splits):
        lines.append(f"{INDENT}({len(splits) - len(shown)} completed splits not listed: --json lists every split)")
    return lines


def _job(job: Mapping[str, Any]) -> str:
    text = f"job {job['id']}"
    if job["mirror"]:
        text += f": a mirror of {_p(job['original'] or 'a job with the same key')} (runs nothing itself)"
    if job["mirrors"]:
        text += f"; mirrored by {', '.join(_p(name) for name in job['mirrors'])}"
    if job["runnable"]:
        text += f"; runnable since {job['runnable']}"
    return text


def split_lines(split: Mapping[str, Any]) -> list[str]:
    """One line for the split, then its errors, its logs and the last lines of its stderr."""
    facts = [f"split {split['index']}: {split['status']} ({split['status_name']})"]
    if split["element_id"]:
        facts.append(f"element {split['element_id']}{' on ' + _p(split['node']) if split['node'] else ''}")
    elif split["status"] == "N":
        facts.append("being submitted" if split["tag"] else "not submitted yet")
    if split.get("attempt", 1) > 1:
        facts.append(f"attempt {split['attempt']}" + (f" in queue {_p(split['queue'])}" if split.get("queue") else ""))
    if split["slurm_state"]:
        final = split["status"] in ("C", "F", "L") and split["exit_code"]
        facts.append(f"{_p(split['slurm_state'])}{' exit ' + split['exit_code'] if final else ''}")
    if split["pending_reason"]:
        facts.append(f"pending: {_p(split['pending_reason'])}")
    if split["elapsed_s"] is not None:
        facts.append(f"elapsed {_duration(split['elapsed_s'])}")
    if _telling(split["verdict"], split["slurm_state"]):
        facts.append(f"verdict {_p(split['verdict'])}")
    if split["mapping_version"]:
        facts.append(f"mapping {split['mapping_version']}")
    if split["source"] != "database":
        facts.append(f"[{split['source']}]")
    lines = [", ".join(facts[:2]) + "".join(f", {fact}" for fact in facts[2:])]
    lines += [f"{INDENT}{attempt_line(a)}" for a in split.get("attempts") or ()]
    for key, label in (("user_error", "user error"), ("system_error", "system error")):
        if split[key]:
            lines += _multiline(label, split[key])
    if split["timed_out"]:
        lines.append(f"{INDENT}timed out")
    logs = split["logs"]
    if logs is not None:
        stem, out, err = _common_stem(logs["stdout"], logs["stderr"])
        lines.append(f"{INDENT}logs ({logs['state']}): {_p(stem)}{_p(out)}, {_p(err)}")
    if split["stderr_tail"]:
        lines.append(f"{INDENT}stderr, last {len(split['stderr_tail'])} lines:")
        lines += [f"{INDENT}  | {_p(line)}" for line in split["stderr_tail"]]
    return lines


def _multiline(label: str, text: str, keep: int = 5) -> list[str]:
    """An error of several lines (a traceback): its last `keep` lines, under its label."""
    rows = [row for row in text.strip().splitlines() if row.strip()]
    if len(rows) <= 1:
        return [f"{INDENT}{label}: {_p(rows[0] if rows else text)}"]
    cut = f" (last {keep} of {len(rows)} lines)" if len(rows) > keep else ""
    return [f"{INDENT}{label}{cut}:"] + [f"{INDENT}  | {_p(row)}" for row in rows[-keep:]]


def attempt_line(attempt: Mapping[str, Any]) -> str:
    """An earlier attempt of a resubmitted split: `attempt 1: element 4242_0 on n1, FAILED exit 0:9, ...`."""
    facts = [f"attempt {attempt['attempt']}: element {attempt['element_id']}"
             + (f" on {_p(attempt['node'])}" if attempt["node"] else "")]
    if attempt["slurm_state"]:
        code = f" exit {attempt['exit_code']}" if attempt["exit_code"] else ""
        facts.append(f"{_p(attempt['slurm_state'])}{code}")
    if attempt["elapsed_s"] is not None:
        facts.append(f"elapsed {_duration(attempt['elapsed_s'])}")
    if attempt["verdict"]:
        facts.append(f"verdict {_p(attempt['verdict'])}")
    if attempt["queue"]:
        facts.append(f"queue {_p(attempt['queue'])}")
    return ", ".join(facts)


def _telling(verdict: str | None, state: str | None) -> bool:
    """Whether the poller's verdict says more than the state ("failed:out_of_memory" does, "failed:failed" not)."""
    if not verdict or verdict == "done":
        return False
    return verdict.partition(":")[2] != (state or "").split()[0].lower() if state else True


def _common_stem(first: str, second: str) -> tuple[str, str, str]:
    """`/s/slurm-1_0.out`, `/s/slurm-1_0.err` -> (`/s/slurm-1_0`, `.out`, `.err`)."""
    stem, _, out = first.rpartition(".")
    if stem and second.startswith(stem + "."):
        return stem, "." + out, second[len(stem):]
    return "", first, second


def _where(why: Mapping[str, Any]) -> str:
    if not why["element_id"]:
        return " (never reached Slurm)"
    return f" (element {why['element_id']}{' on ' + _p(why['node']) if why['node'] else ''})"


def _duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}" if minutes else f"{secs} s"


def _q(name: str | None) -> str:
    return f"'{printable(name)}'" if name is not None else "-"


def _p(text: str | None) -> str:
    return printable(text) if text is not None else "-"
