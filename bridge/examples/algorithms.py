"""Example block algorithms, written to the element's interface.

Each is ``function(inputs, parameters, context) -> outputs``: ``inputs`` maps
every declared input name to the list of its values over the split's range (one
per data unit), ``outputs`` maps every declared output name (``context.outputs``)
to a list of values. The examples do not care how inputs and outputs are named:
a single-input algorithm takes the only input, and each writes its single output
under the one declared name. Declare them as ``"bridge.examples.algorithms:scale"``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

Inputs = Mapping[str, Sequence[Any]]
Outputs = dict[str, list[Any]]


def _only_input(inputs: Inputs) -> Sequence[Any]:
    if len(inputs) != 1:
        raise ValueError(f"expected exactly one input, got {sorted(inputs)}")
    return next(iter(inputs.values()))


def _output(context: Any, values: list[Any]) -> Outputs:
    if len(context.outputs) != 1:
        raise ValueError(f"expected exactly one output, got {list(context.outputs)}")
    return {context.outputs[0]: values}


def scale(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """Multiply every value by parameters["factor"] (default 2)."""
    factor = parameters.get("factor", 2)
    return _output(context, [value * factor for value in _only_input(inputs)])


def square(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """Square every value."""
    return _output(context, [value * value for value in _only_input(inputs)])


def add(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """Element-wise sum of all inputs (the join of a diamond); they must have the same length."""
    columns = list(inputs.values())
    if not columns or len({len(column) for column in columns}) != 1:
        raise ValueError(f"add needs inputs of one length, got { {k: len(v) for k, v in inputs.items()} }")
    return _output(context, [sum(values) for values in zip(*columns)])


def total(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """The sum of the whole input as one value: a reducer, for an unsplit block."""
    values = _only_input(inputs)
    print(f"total of {len(values)} values")
    return _output(context, [sum(values)])


def fail_always(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """Raise RuntimeError(parameters["message"]): a user error, for failure tests."""
    print("fail_always: about to fail", file=sys.stderr)
    raise RuntimeError(parameters.get("message", "this algorithm always fails"))


def sleep_then_copy(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """Sleep parameters["seconds"] (default 1), then copy the only input: for cancel and timeout tests."""
    time.sleep(float(parameters.get("seconds", 1)))
    return _output(context, list(_only_input(inputs)))


def sleep_by_value(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """Sleep parameters["seconds"] times the split's largest value, then copy: one array's splits end apart."""
    values = list(_only_input(inputs))
    time.sleep(float(parameters.get("seconds", 1)) * max(values, default=0))
    return _output(context, values)


def kill_self(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """Kill its own process with SIGKILL, as a plain `kill -9` would: a signal-9 death without any memory kill."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL cannot be caught")


def allocate(inputs: Inputs, parameters: Mapping[str, Any], context: Any) -> Outputs:
    """Hold parameters["megabytes"] of touched memory for parameters["seconds"], then copy the input.

    The bytes are written (not a lazy calloc) so the pages really count in the
    resident set that Slurm's OverMemoryKill watches: for out-of-memory tests.
    """
    size = int(parameters.get("megabytes", 100)) * 1024 * 1024
    block = b"\x01" * size
    time.sleep(float(parameters.get("seconds", 3)))
    copied = list(_only_input(inputs))
    del block
    return _output(context, copied)
