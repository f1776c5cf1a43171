"""Values in sbatch's own syntax: `#SBATCH` quoting, filename patterns, and what slurmctld accepts.

sbatch parses `#SBATCH` lines itself (src/sbatch/opt.c `_get_argument`: quotes
group, a backslash escapes the next character even inside quotes, an unquoted
`#` ends the line); --output/--error are patterns ("%A", "%a", "%%"; a backslash
turns every pattern off); slurmctld refuses a comment over 1024 bytes. A newline
could end a `#SBATCH` comment and start a shell command, so newlines and other
control characters are refused outright. Pure functions, no jinja2.
"""

from __future__ import annotations

import re

from bridge.errors import BridgeError

_SAFE = re.compile(r"^[A-Za-z0-9_.,:/=%@+-]+$")
_SEPARATOR = re.compile(r"packjob|hetjob", re.IGNORECASE)


class UnsafeValueError(BridgeError):
    """A value cannot be put into an sbatch script safely."""


def check_value(what: str, value: str) -> str:
    """Return value, or raise UnsafeValueError if it holds a newline or another control character."""
    bad = [c for c in value if ord(c) < 32 or ord(c) == 127]
    if bad:
        raise UnsafeValueError(f"{what} contains a control character {bad[0]!r}: {value!r}")
    return value


def sbatch_quote(value: str) -> str:
    """Quote a value for an `#SBATCH` line so that sbatch's own parser reads it back unchanged."""
    check_value("#SBATCH value", value)
    # Old sbatch releases blank out "packjob" anywhere on a directive line (het-job
    # separator): quoted, such a value at least stays one argument.
    if _SAFE.match(value) and not _SEPARATOR.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sbatch_unquote(text: str) -> list[str]:
    """Split an `#SBATCH` argument text the way sbatch does (for tests and admin directives)."""
    words: list[str] = []
    word: list[str] | None = None
    quote, escape = "", False
    for c in text:
        if escape:
            escape = False
        elif c == "\\":
            escape = True
            word = word if word is not None else []
            continue
        elif quote:
            if c == quote:
                quote = ""
                continue
        elif c in "\"'":
            quote, word = c, word if word is not None else []
            continue
        elif c == "#":
            break
        elif c.isspace():
            if word is not None:
                words.append("".join(word))
                word = None
            continue
        word = word if word is not None else []
        word.append(c)
    if word is not None:
        words.append("".join(word))
    return words


SLURM_TEXT_MAX = 1000  # bytes; slurmctld refuses a job whose comment is over 1024 ("Pathname ... too long")


def bounded_comment(text: str) -> str:
    """The comment as Slurm will keep it: whole if it fits, else cut (at a character) and marked with "…"."""
    data = text.encode()
    if len(data) <= SLURM_TEXT_MAX:
        return text
    return data[:SLURM_TEXT_MAX - 4].decode(errors="ignore") + " …"


def slurm_filename(directory: str) -> str:
    """A directory as the literal start of an --output/--error pattern: "%" doubled (sbatch reads "%%" as "%").

    A backslash cannot be written at all: sbatch takes it as "replace no pattern", so "%A_%a" would
    stay literal and every element would share one log file.
    """
    if "\\" in directory:
        raise UnsafeValueError(f"a path for Slurm's --output/--error cannot hold a backslash: {directory!r}")
    return directory.replace("%", "%%")
