"""A BEAT block's split, run the way BEAT's local executor runs a block: the element's side.

The element (bridge.sbatch_scripts.element) hands a configuration of BEAT's
shape (``"kind": "beat"``: algorithm ``user/name/version``, prefix, channel,
parameters, inputs and outputs ``{path, channel, hash}``, range) to
run_beat_split, which

1. writes ``configuration.json`` in BEAT's container form
   (``helpers.convert_experiment_configuration_to_container``: no range key
   for an unsplit block) into a private working directory, and exports the
   algorithm with its dataformats and libraries from the prefix into
   ``<work>/prefix`` (``Algorithm.export``), as beat.core does before a run;
2. starts beat.backend.python's ``MessageHandler`` on 127.0.0.1 and runs
   ``beat_exec.py`` (its ``execute`` script, see there) as a child process
   connected to it; the child's AlgorithmExecutor reads the inputs with
   CachedDataSource over the range and writes each output with CachedDataSink
   (``.data``/``.index`` and their ``.checksum``: BEAT's own files);
3. returns what the handler heard: ``user_error`` (``err usr``: the algorithm
   failed) or ``system_error`` (``err sys``, or a child that died without a
   word), and BEAT's I/O statistics (``don``: volume, blocks, time, network,
   files).

beat.backend.python is imported here only, and only for a BEAT block, so that
callable blocks run on a node without it (its absence is a system error naming
the extra to install). Python 3.11 at most: it imports ``imp``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.sbatch_scripts.element_io import ElementSystemError, split_files

EXECUTOR = Path(__file__).with_name("beat_exec.py")
INSTALL_HINT = "pip install 'beat-slurm-bridge[beat]' (beat.backend.python 1.7.15, Python <= 3.11)"


@dataclass
class BeatOutcome:
    """What BEAT's message handler heard from the algorithm's process."""

    user_error: str = ""
    system_error: str = ""
    statistics: dict[str, Any] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)


def is_beat(configuration: dict[str, Any]) -> bool:
    return configuration.get("kind") == "beat"


def configuration_problems(configuration: dict[str, Any]) -> list[str]:
    """What is wrong with a BEAT block's configuration (element-side check, before anything runs)."""
    problems = []
    if not isinstance(configuration.get("prefix"), str) or not Path(configuration["prefix"]).is_absolute():
        problems.append("'prefix' must be the BEAT prefix's absolute path")
    if not isinstance(configuration.get("channel"), str):
        problems.append("'channel' must be the block's synchronisation channel")
    for key in ("inputs", "outputs"):
        entries = configuration.get(key)
        if not isinstance(entries, dict) or not all(
                isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("channel"), str)
                for e in entries.values()):
            problems.append(f"'{key}' must map each name to {{path, channel, hash}}")
    return problems


def container_configuration(configuration: dict[str, Any]) -> dict[str, Any]:
    """BEAT's experiment configuration of this split (its keys only), for convert_..._to_container."""
    beat = {key: configuration[key] for key in ("algorithm", "channel", "parameters", "inputs", "outputs")}
    if configuration.get("range"):
        beat["range"] = list(configuration["range"])
    return beat


def _beat_modules() -> Any:
    try:
        from beat.backend.python import algorithm, execution, helpers
    except ImportError as e:
        raise ElementSystemError(f"beat.backend.python is not installed on this node ({e}): {INSTALL_HINT}") from e
    return algorithm, execution, helpers


def prepare(configuration: dict[str, Any], work: Path) -> None:
    """configuration.json (container form) and the exported algorithm in `work` (ElementSystemError if not)."""
    algorithm, _execution, helpers = _beat_modules()
    name, prefix = configuration["algorithm"], configuration["prefix"]
    loaded = algorithm.Algorithm(prefix, name)
    if not loaded.valid:
        raise ElementSystemError(f"BEAT algorithm {name!r} in prefix {prefix}: {'; '.join(loaded.errors)}")
    (work / "prefix").mkdir()
    loaded.export(str(work / "prefix"))
    container = helpers.convert_experiment_configuration_to_container(container_configuration(configuration))
    (work / "configuration.json").write_text(json.dumps(container, indent=1, sort_keys=True))


def run_beat_split(configuration: dict[str, Any], root: Path) -> BeatOutcome:
    """Run the split's algorithm under BEAT's executor and message handler; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="beat-element-") as directory:
        work = Path(directory)
        prepare(configuration, work)
        _algorithm, execution, _helpers = _beat_modules()
        handler = execution.MessageHandler("127.0.0.1")
        handler.start()
        try:
            code = _run_child(root, handler.address, work)
        finally:
            handler.stop.set()  # set already when it acknowledged `don` or `err`
            handler.join()
            handler.destroy()
    outcome = BeatOutcome(handler.user_error, handler.system_error, dict(handler.statistics))
    if code != 0 and not (outcome.user_error or outcome.system_error):
        outcome.system_error = f"the BEAT executor process exited with code {code} without reporting an error"
    if not (outcome.user_error or outcome.system_error):
        outcome.written = _written(configuration, root)
    return outcome


def _run_child(root: Path, address: str, work: Path) -> int:
    """The executor process's exit code; killed if this one is interrupted (SIGTERM: Slurm's scancel)."""
    argv = [sys.executable, str(EXECUTOR), "--cache", str(root), address, str(work)]
    child = subprocess.Popen(argv)
    try:
        return child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _written(configuration: dict[str, Any], root: Path) -> list[str]:
    """The .data files of the split's outputs (the range's, or all of an unsplit block's)."""
    span = configuration.get("range")
    files = []
    for output in configuration["outputs"].values():
        for start, _end, file in split_files(root / output["path"], ".data"):
            if not span or start == span[0]:
                files.append(str(file))
    return files
