"""Submission tags: the unique name every job array carries, and what can be read back from it.

A tag is `bb-<deployment>-<unix time>-<host>-<pid>-<random>` (time, pid and
random in hex; host is a short hash of the submitting host's name; deployment
is bridge.toml's `deployment`, 1-16 of [a-z0-9]). It is set on the splits
before sbatch and is the array's job name, so a crash between the two is found
on the cluster by name. Its age and owner tell whether a claim left without an
array id may still be in the hands of a live submitter (leave it) or was
abandoned (settle it); its deployment tells `beat-bridge reconcile` which arrays
are this bridge's to report and scancel, so a second bridge's never are.
Tags made before deployments (`bb-<time>-<host>-<pid>-<random>`) still read
back, with no deployment. A tag is at most 49 characters of [a-z0-9-] (time
until 2106, a pid of up to 8 hex digits): within the database column (100),
and a job name Slurm keeps whole, needing no quoting in squeue, sacct or scancel.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass

HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]
DEFAULT_DEPLOYMENT = "main"
DEPLOYMENT = re.compile(r"[a-z0-9]{1,16}")
DEPLOYMENT_RULE = "1 to 16 characters of a-z and 0-9"


@dataclass(frozen=True)
class Tag:
    """What a tag says of the claim that made it."""

    made: float
    host: str
    pid: int
    deployment: str | None = None  # None: a tag made before deployments (its bridge is unknown)


def valid_deployment(name: object) -> bool:
    """Whether `name` may be a deployment id (it goes into every tag, between dashes)."""
    return isinstance(name, str) and DEPLOYMENT.fullmatch(name) is not None


def new_tag(now: float | None = None, pid: int | None = None, deployment: str = DEFAULT_DEPLOYMENT) -> str:
    """A new, unique submission tag of this deployment, host and process."""
    if not valid_deployment(deployment):
        raise ValueError(f"deployment {deployment!r} is invalid: expected {DEPLOYMENT_RULE}")
    made = int(now if now is not None else time.time())
    pid = pid if pid is not None else os.getpid()
    return f"bb-{deployment}-{made:x}-{HOST}-{pid:x}-{secrets.token_hex(3)}"


def parse_tag(tag: str) -> Tag | None:
    """The tag's time, host, pid and deployment, or None when it is not one of a bridge's tags."""
    parts = tag.split("-")
    if parts[0] != "bb" or len(parts) not in (5, 6):
        return None
    deployment = parts.pop(1) if len(parts) == 6 else None
    if deployment is not None and not valid_deployment(deployment):
        return None
    try:
        return Tag(float(int(parts[1], 16)), parts[2], int(parts[3], 16), deployment)
    except ValueError:
        return None


def ours(tag: str, deployment: str) -> bool:
    """Whether the tag was made by a bridge of `deployment` (an old tag, of no deployment, never is)."""
    parsed = parse_tag(tag)
    return parsed is not None and parsed.deployment == deployment


def tag_age(tag: str, now: float | None = None) -> float | None:
    """Seconds since the tag was made, or None if it is not one of ours."""
    parsed = parse_tag(tag)
    return None if parsed is None else (now if now is not None else time.time()) - parsed.made


def abandoned(tag: str, older_than: float, now: float | None = None) -> bool:
    """Whether a claim may be settled: made by this process (which is not submitting now), by a
    dead process of this host, or longer ago than any submission can take."""
    parsed = parse_tag(tag)
    if parsed is None:
        return True  # not a tag of this bridge's making: nobody is at work on it
    if parsed.host == HOST and (parsed.pid == os.getpid() or not _alive(parsed.pid)):
        return True
    return (now if now is not None else time.time()) - parsed.made >= older_than


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
