"""Render the sbatch script of one job array from a jinja2 template.

Values from experiments (names, paths) end up in two languages: `#SBATCH` lines,
which sbatch parses itself (src/sbatch/opt.c `_get_argument`: quotes group, a
backslash escapes the next character even inside quotes, an unquoted `#` ends
the line), and the shell body, which bash parses. Each gets its own quoting:
`sbatch_quote` for directives (bridge.sbatch_text, with the other rules of
sbatch's own syntax), `shlex.quote` (the `shquote` filter) for the body.
A newline could end a `#SBATCH` comment and start a shell command, so newlines
and other control characters are refused outright.

Templates are admin-written but render user values, so they run in jinja2's
sandbox, and every output expression must end with a quoting filter
(`| shquote`, `| sbatchquote`) or an explicit `| raw` (a value the bridge built,
such as an option name): checked on the template's syntax tree when it is
loaded (every branch, every included template), and again on each value
rendered (the filters mark what they quoted; anything else is refused).
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bridge.errors import BridgeError
from bridge.sbatch_options import BRIDGE_OPTIONS, extra_options, parse_directive  # re-exported
from bridge.sbatch_text import (  # re-exported: the quoting rules render applies
    SLURM_TEXT_MAX,
    UnsafeValueError,
    bounded_comment,
    check_value,
    sbatch_quote,
    sbatch_unquote,
    slurm_filename,
)
from bridge.template_loader import SearchPathLoader
from bridge.template_paths import DEFAULT_TEMPLATE, package_templates_dir  # re-exported

log = logging.getLogger(__name__)

__all__ = ["BRIDGE_OPTIONS", "DEFAULT_TEMPLATE", "SLURM_TEXT_MAX", "UnsafeValueError", "bounded_comment", "check_value",
           "extra_options", "package_templates_dir", "parse_directive", "sbatch_quote", "sbatch_unquote",
           "slurm_filename"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUOTING_FILTERS = ("shquote", "sbatchquote", "raw")
_QUOTE_HINT = "end it with | shquote (shell), | sbatchquote (#SBATCH value) or | raw (a value the bridge built)"


class TemplateError(BridgeError):
    """An sbatch template could not be rendered."""


@dataclass(frozen=True)
class ArraySpec:
    """Everything one job array's script says: Slurm options and the per-element command."""

    job_name: str
    submission_tag: str
    partition: str
    cpus_per_task: int
    mem_mb: int
    time_minutes: int
    array_indices: tuple[int, ...]
    output: str
    error: str
    python: str
    element_runner: str
    spool_dir: str
    throttle: int | None = None
    account: str | None = None
    qos: str | None = None
    comment: str | None = None
    extra_directives: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


def compact_ranges(indices: Iterable[int]) -> str:
    """`[0, 1, 2, 3, 5]` -> `"0-3,5"`: the array index list as sbatch's --array wants it."""
    values = sorted(set(indices))
    if not values or values[0] < 0:
        raise UnsafeValueError(f"array indices must be a non-empty list of integers >= 0, got {values!r}")
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(parts)


def sbatch_directives(spec: ArraySpec) -> dict[str, str | None]:
    """The one sorted mapping of `#SBATCH` options (name -> unquoted value, None for a flag)."""
    array = compact_ranges(spec.array_indices)
    if spec.throttle is not None:
        if spec.throttle < 1:
            raise UnsafeValueError(f"throttle must be >= 1, got {spec.throttle}")
        array += f"%{spec.throttle}"
    if not spec.job_name.strip() or not spec.submission_tag.strip():
        raise UnsafeValueError("job name and submission tag must not be empty: sacct finds arrays by them")
    if "|" in spec.job_name or "," in spec.job_name:
        # sacct --parsable2 separates fields with "|" and `sacct --name` takes a comma list
        raise UnsafeValueError(f"job name must not contain '|' or ',' (sacct could not find it): {spec.job_name!r}")
    comment = bounded_comment(spec.submission_tag if not spec.comment else f"{spec.submission_tag} {spec.comment}")
    options: dict[str, str | None] = {
        "array": array,
        "comment": comment,
        "cpus-per-task": str(_positive("cpus_per_task", spec.cpus_per_task)),
        "error": spec.error,
        "job-name": spec.job_name,
        "mem": f"{_positive('mem_mb', spec.mem_mb)}M",
        "no-requeue": None,  # PREEMPTED or NODE_FAIL must end the element, not restart it unseen
        "output": spec.output,
        "partition": spec.partition,
        "time": str(_positive("time_minutes", spec.time_minutes)),
    }
    if spec.account:
        options["account"] = spec.account
    if spec.qos:
        options["qos"] = spec.qos
    options.update(extra_options(spec.extra_directives, taken=options))
    for name, value in options.items():
        if value is not None:
            check_value(f"--{name}", value)
    return dict(sorted(options.items()))


def _positive(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UnsafeValueError(f"{what} must be an integer >= 1, got {value!r}")
    return value


class Quoted(str):
    """A value a quoting filter (or an explicit `raw`) let into the script; nothing else may be output."""


class _TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, refusing at parse time any output expression that does not end with a quoting filter."""

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        check_quoting(tree, source, name or filename or "<template>")
        return tree


def check_quoting(tree: nodes.Template, source: str, name: str) -> None:
    """TemplateError naming the line of the first output not passed through shquote, sbatchquote or raw."""
    lines = source.splitlines()
    for block in tree.find_all(nodes.FilterBlock):
        raise TemplateError(f"template {name} line {block.lineno}: a {{% filter %}} block could undo the quoting "
                            "of the values inside it: filter each value instead")
    for output in tree.find_all(nodes.Output):
        for child in output.nodes:
            if isinstance(child, nodes.TemplateData):
                continue
            if isinstance(child, nodes.Filter) and child.name in QUOTING_FILTERS:
                continue
            text = lines[child.lineno - 1].strip() if 0 < child.lineno <= len(lines) else ""
            raise TemplateError(f"template {name} line {child.lineno}: an output is not quoted in {text[:120]!r}: "
                                f"{_QUOTE_HINT}")


def _finalize(value: object) -> object:
    if isinstance(value, Quoted):
        return value
    raise TemplateError(f"a value reached the script without a quoting filter ({str(value)[:60]!r}): {_QUOTE_HINT}")


def _environment(search_path: Sequence[Path]) -> jinja2.Environment:
    return _cached_environment(tuple(str(p) for p in search_path))


@lru_cache(maxsize=32)
def _cached_environment(search_path: tuple[str, ...]) -> jinja2.Environment:
    """One environment per search path: a template is compiled once, not at each render (each queue's, at load).

    An edited or newly overriding file is still seen by the next render (bridge.template_loader).
    """
    env = _TemplateEnvironment(
        loader=SearchPathLoader(list(search_path)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["shquote"] = lambda v: Quoted(shlex.quote(check_value("shell value", str(v))))
    env.filters["sbatchquote"] = lambda v: Quoted(sbatch_quote(v))
    env.filters["raw"] = lambda v: Quoted(check_value("raw value", str(v)))
    return env


def _context(spec: ArraySpec) -> dict[str, object]:
    for name, value in spec.env:
        if not _ENV_NAME.match(name):
            raise UnsafeValueError(f"environment variable name {name!r} is not valid")
    runner_is_path = spec.element_runner.endswith(".py") or "/" in spec.element_runner
    return {
        "spec": spec,
        "directives": sbatch_directives(spec),
        "env": dict(spec.env),
        "runner_is_path": runner_is_path,
    }


def render_array_script(
    spec: ArraySpec,
    template: str | Path | None = None,
    search_path: Sequence[Path] = (),
) -> str:
    """Render the array's sbatch script.

    `template` is a name looked up in `search_path` (admin dirs first) then the
    shipped templates, or a path to a file (a queue's resolved override).
    """
    dirs = [Path(p) for p in search_path]
    name = DEFAULT_TEMPLATE if template is None else str(template)
    dirs.append(package_templates_dir())
    if isinstance(template, Path) and template.is_absolute():
        if not any(template.resolve().is_relative_to(d.resolve()) for d in dirs):
            raise TemplateError(f"template {template} is outside the templates directories: "
                                f"{', '.join(map(str, dirs))}")
        dirs.insert(0, template.parent)
        name = template.name
    context = _context(spec)
    try:
        text = _environment(tuple(map(str, dirs))).get_template(name).render(context)
    except jinja2.TemplateNotFound as e:
        raise TemplateError(f"template {name} not found in {', '.join(map(str, dirs))}") from e
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"template {e.filename or name} line {e.lineno}: syntax error: {e.message}") from e
    except jinja2.UndefinedError as e:
        raise TemplateError(f"template {name}: undefined variable: {e.message}") from e
    except (UnsafeValueError, TemplateError):
        raise
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as e:
        raise TemplateError(f"template {name}: {e}") from e
    log.debug("rendered %s for %s (%d elements)", name, spec.job_name, len(spec.array_indices))
    return text
