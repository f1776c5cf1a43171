"""Submission tags: the unique name every job array carries, and what can be read back from it.

A tag is `bb-<unix time>-<host>-<pid>-<random>` (hex; host is a short hash of the
submitting host's name). It is set on the splits before sbatch and is the
array's job name, so a crash between the two is found on the cluster by name.
Its age and owner tell whether a claim left without an array id may still be in
the hands of a live submitter (leave it) or was abandoned (settle it).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from dataclasses import dataclass

HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]


@dataclass(frozen=True)
class Tag:
    """What a tag says of the claim that made it."""

    made: float
    host: str
    pid: int


def new_tag(now: float | None = None, pid: int | None = None) -> str:
    """A new, unique submission tag for this host and process."""
    made = int(now if now is not None else time.time())
    return f"bb-{made:x}-{HOST}-{pid if pid is not None else os.getpid():x}-{secrets.token_hex(3)}"


def parse_tag(tag: str) -> Tag | None:
    """The tag's time, host and pid, or None when it is not one of ours."""
    parts = tag.split("-")
    if len(parts) != 5 or parts[0] != "bb":
        return None
    try:
        return Tag(float(int(parts[1], 16)), parts[2], int(parts[3], 16))
    except ValueError:
        return None


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
