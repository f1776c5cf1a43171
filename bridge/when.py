"""A time on a command line (`--since`, `--until`): one reading for every command, in UTC (pure)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

FORMS = "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC), now, or a time ago: Nd, Nh, Nm, Ns"
_AGO = re.compile(r"^(\d+)([dhms])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_when(text: str, now: datetime) -> datetime:
    """`2026-12-01`, `2026-12-01T10:30[:00]` (UTC unless it says otherwise), `now`, `7d`/`12h`/`30m`/`90s` ago.

    A naive UTC datetime; ValueError naming the text and the valid forms.
    """
    value = text.strip()
    if value == "now":
        return now
    ago = _AGO.match(value)
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: expected {FORMS}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
