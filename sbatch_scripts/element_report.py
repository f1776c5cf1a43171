"""What one element found out, and how it is told: captured output, BEAT's result dict, the .out/.err line.

Part of the element (bridge.sbatch_scripts.element), which runs on the compute node: standard
library and bridge.results only.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bridge.results import beat_result
from bridge.sbatch_scripts.element_io import IOStats

MAX_OUTPUT = 64 * 1024  # bytes of stdout and of stderr kept in the result: the first and last half


@dataclass
class ElementReport:
    """What the element found out, turned into the result dict at the end."""

    stats: IOStats = field(default_factory=IOStats)
    stdout: str = ""
    stderr: str = ""
    user_error: str | None = None
    system_error: str | None = None
    written: list[str] = field(default_factory=list)
    label: str = ""
    beat_statistics: dict[str, Any] = field(default_factory=dict)
    linger: float = 0.0  # the manifest's: seconds to wait for the bridge's release after success


@contextmanager
def captured_output(report: ElementReport) -> Iterator[None]:
    """Send fds 1 and 2 to temporary files meanwhile; keep what was written in `report`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            report.stdout, report.stderr = truncated(out), truncated(err)


def truncated(stream: Any, limit: int = MAX_OUTPUT) -> str:
    """The text of a file: all of it, or its first and last limit/2 bytes around a marker."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    if size <= limit:
        return stream.read().decode(errors="replace")
    head = stream.read(limit // 2)
    stream.seek(size - limit // 2)
    tail = stream.read()
    marker = f"\n[... {size - limit} bytes truncated ...]\n".encode()
    return (head + marker + tail).decode(errors="replace")


def result_dict(report: ElementReport, elapsed: float) -> dict[str, Any]:
    """BEAT's result dict for this element, with this process's resource usage."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    failed = report.user_error is not None or report.system_error is not None
    return beat_result(
        status=1 if failed else 0, stdout=report.stdout, stderr=report.stderr,
        user_error=report.user_error, system_error=report.system_error,
        statistics={
            "cpu": {"user": own.ru_utime + children.ru_utime, "system": own.ru_stime + children.ru_stime},
            # ru_maxrss is in kilobytes on Linux
            "memory": {"rss": max(own.ru_maxrss, children.ru_maxrss) * 1024},
            # a BEAT block's also carry BEAT's own I/O statistics (volume, blocks, time, network, files)
            "data": {**report.beat_statistics, "read": report.stats.read, "written": report.stats.written},
            "time": {"elapsed": round(elapsed, 3)},
        },
    )


def announce(report: ElementReport, result: dict[str, Any], code: int) -> None:
    """One line for the Slurm .out file (exit 0) or .err file (any other exit code)."""
    elapsed = result["statistics"]["time"]["elapsed"]
    if code == 0:
        print(f"{report.label}: done in {elapsed} s, wrote {', '.join(report.written)}", flush=True)
        return
    kind = "user error" if report.user_error else "system error"
    text = (report.user_error or report.system_error or "").strip().splitlines() or [""]
    print(f"{report.label}: {kind} (exit {code}) after {elapsed} s: {text[-1]}", file=sys.stderr, flush=True)
    if report.stderr:
        sys.stderr.write(report.stderr[-4000:])
        sys.stderr.flush()
