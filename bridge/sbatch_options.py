"""Which sbatch option an admin's extra directive really sets: the one clash rule.

An extra directive must not set what the bridge sets on every array (partition,
time, memory, CPUs, array, names, log files...), whichever spelling it uses:
sbatch reads `-t 10` as `--time=10`, `--mem-per-cpu` and `--mem-per-gpu` as
another way to give `--mem` (sbatch 22.05: "--mem, --mem-per-cpu, and
--mem-per-gpu are mutually exclusive"), and, through getopt_long, `--part=x` as
`--partition=x` (a unique prefix of a long option is that option). The
loader (bridge.queues_config) refuses such a directive when queues.toml is read,
the renderer (bridge.render) again when a script is rendered, and
`beat-bridge queues check` names it: all three through `clash` here. The JSON
Schema of queues.toml (bridge.schema) refuses the same names, from `clashing_names`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bridge.sbatch_text import UnsafeValueError, check_value, sbatch_unquote

# The options every array gets from the bridge (account and qos only when the queue sets them).
BRIDGE_OPTIONS = frozenset(
    {"array", "comment", "cpus-per-task", "error", "job-name", "mem", "no-requeue", "output", "partition", "time"}
)
# Options that change what sbatch does with the script as the bridge runs it: `--parsable` is the
# bridge's own (the job id is read from it), `--wait` would block the cycle until the array ends,
# `--test-only` would never submit, `--wrap` replaces the script.
SUBMISSION_OPTIONS = frozenset({"parsable", "test-only", "wait", "wrap"})
# Another spelling of an option's setting: sbatch refuses both together, or the last one wins.
SAME_SETTING = {"mem-per-cpu": "mem", "mem-per-gpu": "mem", "requeue": "no-requeue"}
# sbatch's short options (sbatch --help, Slurm 22.05) -> the long option each stands for.
SHORT_FORMS = {
    "a": "array", "A": "account", "b": "begin", "c": "cpus-per-task", "C": "constraint", "d": "dependency",
    "D": "chdir", "e": "error", "F": "nodefile", "G": "gpus", "H": "hold", "i": "input", "J": "job-name",
    "k": "no-kill", "L": "licenses", "m": "distribution", "M": "clusters", "n": "ntasks", "N": "nodes",
    "o": "output", "O": "overcommit", "p": "partition", "q": "qos", "Q": "quiet", "s": "oversubscribe",
    "S": "core-spec", "t": "time", "v": "verbose", "W": "wait", "w": "nodelist", "x": "exclude",
}
_SHORT = re.compile(r"^-([A-Za-z])(?:[\s=]*(.*))?$")


def clash(name: str, taken: Iterable[str]) -> str | None:
    """The option the bridge sets that long option `name` would set too, as `--x` with why; None if none.

    `taken` is what the bridge sets for this queue (BRIDGE_OPTIONS, plus account and qos when
    the queue names them); SUBMISSION_OPTIONS are always taken.
    """
    taken = set(taken) | SUBMISSION_OPTIONS
    if name in taken:
        return f"--{name}"
    same = SAME_SETTING.get(name)
    if same in taken:
        return f"--{same} (--{name} sets the same thing)"
    prefixed = sorted(option for option in _spellings(taken) if option.startswith(name))
    if prefixed:  # no sbatch option that the bridge leaves free is a prefix of one it sets (sbatch --help)
        return (f"{' or '.join('--' + p for p in prefixed)} (sbatch reads a unique prefix of a long option as "
                "that option)")
    return None


def clashing_names(taken: Iterable[str] = BRIDGE_OPTIONS) -> frozenset[str]:
    """Every long option name `clash` refuses for `taken`: each spelling of a taken option, and its prefixes.

    The three tests of `clash` (the name, another spelling, a prefix) all come down to "a prefix of a
    spelling", so the set is finite: bridge.schema writes it into queues.toml's JSON Schema, where no
    function can run.
    """
    return frozenset(option[:end] for option in _spellings(set(taken) | SUBMISSION_OPTIONS)
                     for end in range(1, len(option) + 1))


def _spellings(taken: set[str]) -> set[str]:
    """The taken options and the other spellings of the same setting (SAME_SETTING)."""
    return taken | {other for other, target in SAME_SETTING.items() if target in taken}


def short_form(text: str) -> tuple[str, str] | None:
    """`-t 10` -> ("t", "time"): the short option a directive starts with and its long form; None if none."""
    match = _SHORT.match(text.strip())
    if not match or match.group(1) not in SHORT_FORMS:
        return None
    return match.group(1), SHORT_FORMS[match.group(1)]


def directive_problem(text: str, taken: Iterable[str] = BRIDGE_OPTIONS) -> str | None:
    """What is wrong with a directive in short form (`-p debug`): the clash, or the long form to write instead."""
    short = short_form(text)
    if short is None:
        return None
    letter, long = short
    why = clash(long, taken)
    if why is not None:
        return f"-{letter} is sbatch's short form of --{long}: it conflicts with {why}, which the bridge sets"
    return f"-{letter} is sbatch's short form of --{long}: write --{long}=... (extra directives are long options)"


_OPTION = re.compile(r"^--([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?$")


def parse_directive(text: str) -> tuple[str, str | None]:
    """`--constraint="intel avx"` -> `("constraint", "intel avx")`; a flag gives `(name, None)`."""
    check_value("extra directive", text)
    match = _OPTION.match(text.strip())
    if not match:
        hint = directive_problem(text)
        raise UnsafeValueError(f"extra directive {text!r} is not a long sbatch option like --name=value"
                               + (f": {hint}" if hint else ""))
    name, raw = match.groups()
    if raw is None:
        return name, None
    words = sbatch_unquote(raw)
    if len(words) != 1:
        raise UnsafeValueError(f"extra directive {text!r} must have exactly one value")
    return name, words[0]


def extra_options(directives: Iterable[str], taken: Iterable[str] = BRIDGE_OPTIONS) -> dict[str, str | None]:
    """An admin's extra directives as options; one that sets an option the bridge sets, under any
    spelling sbatch reads as it (bridge.sbatch_options), is an error."""
    taken = set(taken)
    options: dict[str, str | None] = {}
    for text in directives:
        name, value = parse_directive(text)
        if name in options:
            raise UnsafeValueError(f"extra directive {text!r} conflicts with another --{name}")
        why = clash(name, taken)
        if why is not None:
            raise UnsafeValueError(f"extra directive {text!r} conflicts with {why}")
        options[name] = value
    return options
