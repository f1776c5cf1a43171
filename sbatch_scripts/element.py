"""What one job-array element runs: one split of one block, from its manifest entry to its result.

Run as ``python -m bridge.sbatch_scripts.element --spool DIR --index N`` (or as a
path, ``python .../sbatch_scripts/element.py ...``); N is $SLURM_ARRAY_TASK_ID.

Spool contract (written by the bridge before sbatch, in ``<spool_dir>/<tag>/``):

- ``manifest.jsonl``: one per array (format in bridge.sbatch_scripts.manifest):
  the configuration every split shares, the cache root, the submission tag,
  the array's offset and one fixed-width line per array index N. The element
  reads the header and seeks to line N (its configuration is
  get_configuration_for_split(split)), checks that its split_index is N +
  offset and, when $BEAT_SUBMISSION_TAG is set, that the manifest's tag equals
  it. N is the array index: the split index itself, or less a multiple of
  MaxArraySize (the offset) when a job's splits go out in several arrays; the
  configuration's split_index is the split's own (given to the algorithm). An
  array without a manifest (submitted by an older bridge) is read from its
  legacy ``split-N.json``.
- ``split-N.result.json`` (written by the element, atomically, also on failure
  whenever the spool directory is writable): BEAT's result dict ``{"status",
  "stdout", "stderr", "user_error", "system_error", "timed_out": false,
  "statistics": {"cpu": {"user", "system"} (seconds, this process and its
  children), "memory": {"rss"} (peak, bytes), "data": {"read", "written"}
  (bytes: upstream ``.data`` files read, whole or in part; all four files of
  every output written; generated datasets read nothing), "time": {"elapsed"}
  (seconds)}}``.

Exit codes: 0 success (status 0, outputs written); 1 user error (the algorithm
raised, or returned outputs that do not fit the block: status 1, ``user_error``);
2 system error (bad or missing manifest or entry, algorithm not importable, unknown
dataset, missing or corrupt upstream cache, cannot write the cache: status 1,
``system_error``); 143 terminated by SIGTERM (scancel, or Slurm's time limit:
status 1, ``system_error``, no output written). One line goes to the real
stdout (or stderr on failure), i.e. the element's Slurm .out/.err files.
After a success, an element whose manifest header says ``linger`` stays until
the bridge writes ``split-N.release`` (at most that many seconds, then it ends
anyway) and says in one more line which it was: the bridge submits what the
split's end made runnable first, so that this element's end starts it at once
(bridge.handover).

A BEAT block (``"kind": "beat"``: its configuration is BEAT's, with ``algorithm``
``user/name/version`` of the ``prefix``) runs under beat.backend.python's executor
instead (bridge.sbatch_scripts.beat_run): its outputs are BEAT's own cache files,
its result's ``statistics.data`` adds BEAT's I/O statistics (volume, blocks, time,
network, files) to ``read``/``written``, an ``err usr`` from BEAT is the user
error (exit 1) and an ``err sys`` the system error (exit 2).

The algorithm interface: the block's ``algorithm`` is ``"package.module:function"``
and is called as ``function(inputs, parameters, context)`` where

- ``inputs``: ``dict[str, list]``, each declared input's values over the split's
  range (one per data unit, in index order; the whole input for an unsplit block);
- ``parameters``: the block's parameters dict;
- ``context``: a :class:`Context` (block, experiment, output names, range, split);

and returns ``dict[str, list]`` with exactly the declared outputs. For a split
block (range [s, e]) each output has exactly e-s+1 values, value k being unit
s+k; an unsplit block may return any non-empty number of values per output,
numbered from 0 (so a reducer returns one). Values must be JSON-serialisable.
What the algorithm prints (fd level, so subprocesses too) becomes the result's
stdout/stderr, truncated to the first and last MAX_OUTPUT/2 bytes
(bridge.sbatch_scripts.element_report, which also builds the result dict). The data
format is that of bridge.sbatch_scripts.element_io; bridge.sbatch_scripts.spool
and .manifest name, write and read the spool files for the bridge's side.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.sbatch_scripts import beat_run
from bridge.sbatch_scripts.element_io import (
    ElementSystemError,
    OutputError,
    Range,
    atomic_write,
    check_outputs,
    read_inputs,
    write_output,
)
from bridge.sbatch_scripts.element_report import ElementReport, announce, captured_output, result_dict
from bridge.sbatch_scripts.manifest import ManifestError, read_element
from bridge.sbatch_scripts.spool import release_file, result_file

EXIT_OK, EXIT_USER, EXIT_SYSTEM, EXIT_TERMINATED = 0, 1, 2, 128 + signal.SIGTERM
RELEASE_TICK = 0.01  # seconds between two looks for the release file


class Terminated(BaseException):
    """SIGTERM arrived: Slurm cancelled the element or its time limit passed."""


class UserError(Exception):
    """The algorithm failed; the message is its traceback (or what its outputs got wrong)."""


@dataclass(frozen=True)
class Context:
    """What an algorithm may know of its split besides inputs and parameters."""

    block: str
    experiment: str
    outputs: tuple[str, ...]
    start: int | None
    end: int | None
    split_index: int
    nb_splits: int


def load_spool(spool: Path, index: int) -> tuple[dict[str, Any], Path, str, float]:
    """(configuration, cache root, submission tag, linger) of array index `index`, from its manifest, checked."""
    try:
        entry = read_element(spool, index)
    except ManifestError as e:
        raise ElementSystemError(str(e)) from e
    configuration, root, tag, file = entry.configuration, entry.cache_root, entry.submission_tag, entry.file
    if not isinstance(root, str) or not os.path.isabs(root):
        raise ElementSystemError(f"{file}: 'cache_root' must be an absolute path, got {root!r}")
    expected_tag = os.environ.get("BEAT_SUBMISSION_TAG")
    if expected_tag and tag != expected_tag:
        raise ElementSystemError(f"{file}: submission tag {tag!r} is not this array's {expected_tag!r}")
    _check_configuration(file, configuration)
    return configuration, Path(root), str(tag), float(entry.linger)


def _check_configuration(file: Path, configuration: dict[str, Any]) -> None:
    problems = []
    if beat_run.is_beat(configuration):
        problems = beat_run.configuration_problems(configuration)
        if not isinstance(configuration.get("algorithm"), str):
            problems.append("'algorithm' must be a BEAT algorithm's name 'user/name/version'")
    elif not isinstance(configuration.get("algorithm"), str) or ":" not in configuration["algorithm"]:
        problems.append("'algorithm' must be 'package.module:function'")
    if not isinstance(configuration.get("inputs", {}), dict):
        problems.append("'inputs' must be an object")
    if not isinstance(configuration.get("parameters", {}), dict):
        problems.append("'parameters' must be an object")
    outputs = configuration.get("outputs")
    if not isinstance(outputs, dict) or not outputs or not all(
            isinstance(o, dict) and isinstance(o.get("path"), str) for o in outputs.values()):
        problems.append("'outputs' must map each output name to an object with a 'path'")
    span = configuration.get("range")
    if span is not None and not (isinstance(span, list) and len(span) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in span) and 0 <= span[0] <= span[1]):
        problems.append(f"'range' must be null or [start, end] with 0 <= start <= end, got {span!r}")
    if problems:
        raise ElementSystemError(f"{file}: bad configuration: {'; '.join(problems)}")


def import_algorithm(reference: str) -> Callable[..., Any]:
    """The function named by ``package.module:function`` (ElementSystemError if not importable)."""
    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure is ours to report, with its traceback
        raise ElementSystemError(f"cannot import algorithm module {module_name!r}:\n"
                                 f"{''.join(traceback.format_exception(e))}") from e
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ElementSystemError(f"module {module_name!r} has no function {function_name!r}")
    return function


def _algorithm_traceback(error: BaseException) -> str:
    """The traceback of an algorithm's exception, without this module's calling frame."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__.tb_next))


def run_split(spool: Path, index: int, report: ElementReport) -> None:
    """Read the manifest entry, run the algorithm over its range, write its outputs; raise on failure."""
    configuration, root, tag, report.linger = load_spool(spool, index)
    report.label = (f"element {tag} split {index} (split {configuration.get('split_id')}, "
                     f"job {configuration.get('job_id')}, block {configuration.get('block')!r})")
    if beat_run.is_beat(configuration):
        return run_beat(configuration, root, report)
    function = import_algorithm(configuration["algorithm"])
    span: Range | None = tuple(configuration["range"]) if configuration.get("range") else None
    inputs = read_inputs(configuration.get("inputs", {}), root, span, report.stats)
    declared = list(configuration["outputs"])
    context = Context(
        block=str(configuration.get("block", "")), experiment=str(configuration.get("experiment", "")),
        outputs=tuple(declared), start=span[0] if span else None, end=span[1] if span else None,
        split_index=int(configuration.get("split_index", index)),
        nb_splits=int(configuration.get("nb_splits", 1)),
    )
    with captured_output(report):
        try:
            returned = function(inputs, dict(configuration.get("parameters", {})), context)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - whatever the algorithm raises is its error
            raise UserError(_algorithm_traceback(e)) from e
    try:
        outputs = check_outputs(returned, declared, span)
        start = span[0] if span else 0
        for name in declared:
            written = write_output(root, configuration["outputs"][name]["path"], start,
                                   outputs[name], report.stats)
            report.written.append(str(written))
    except OutputError as e:
        raise UserError(str(e)) from e


def run_beat(configuration: dict[str, Any], root: Path, report: ElementReport) -> None:
    """A BEAT block's split under beat.backend.python's executor (bridge.sbatch_scripts.beat_run)."""
    with captured_output(report):
        outcome = beat_run.run_beat_split(configuration, root)
    report.beat_statistics = outcome.statistics
    volume = outcome.statistics.get("volume", {})
    report.stats.read, report.stats.written = int(volume.get("read", 0)), int(volume.get("write", 0))
    report.written = outcome.written
    if outcome.system_error:
        raise ElementSystemError(outcome.system_error)
    if outcome.user_error:
        raise UserError(outcome.user_error)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def execute(spool: Path, index: int) -> int:
    """Run one split and write its result file; returns the exit code (see the module docstring)."""
    began = time.monotonic()
    report = ElementReport(label=f"element split {index} (spool {spool})")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        run_split(spool, index, report)
        code = EXIT_OK
    except UserError as e:
        report.user_error, code = str(e), EXIT_USER
    except ElementSystemError as e:
        report.system_error, code = str(e), EXIT_SYSTEM
    except Terminated:
        report.system_error = "terminated by SIGTERM: cancelled, or over the time limit"
        code = EXIT_TERMINATED
    except Exception as e:  # noqa: BLE001 - a bug of ours still gets a result file
        report.system_error = f"element failure:\n{''.join(traceback.format_exception(e))}"
        code = EXIT_SYSTEM
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the result must be written whole
    result = result_dict(report, time.monotonic() - began)
    code = _write_result(result_file(spool, index), result, report, code)
    signal.signal(signal.SIGTERM, previous)
    announce(report, result, code)
    if code == EXIT_OK and report.linger > 0:
        wait_for_release(release_file(spool, index), report.linger, report.label)
    return code


def wait_for_release(release: Path, linger: float, label: str) -> bool:
    """After a successful result, stay until the bridge's release file appears, `linger` seconds at most.

    The bridge writes it once it has submitted what this split's end made
    runnable (bridge.handover): this element's end then runs slurmctld's
    scheduler for them at once. True if released; one line either way.
    """
    began = time.monotonic()
    while not release.exists():
        if time.monotonic() - began >= linger:
            print(f"{label}: not released within {linger:g} s, ending anyway", flush=True)
            return False
        time.sleep(RELEASE_TICK)
    print(f"{label}: released after {time.monotonic() - began:.3f} s", flush=True)
    return True


def _write_result(file: Path, result: dict[str, Any], report: ElementReport, code: int) -> int:
    try:
        atomic_write(file, json.dumps(result, indent=1, sort_keys=True).encode())
    except OSError as e:
        print(f"{report.label}: cannot write result {file}: {e}", file=sys.stderr, flush=True)
        return code or EXIT_SYSTEM
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one split of a block (one job-array element).")
    parser.add_argument("--spool", required=True, type=Path, help="the array's spool directory")
    parser.add_argument("--index", required=True, type=int, help="the split index ($SLURM_ARRAY_TASK_ID)")
    args = parser.parse_args(argv)
    return execute(args.spool, args.index)


if __name__ == "__main__":
    sys.exit(main())
