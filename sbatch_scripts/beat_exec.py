"""The child process of a BEAT block's element: beat.backend.python's ``execute`` script, minus two things.

Run as ``python .../beat_exec.py --cache ROOT ADDRESS DIRECTORY`` by
bridge.sbatch_scripts.beat_run, with ``DIRECTORY/configuration.json`` (BEAT's
container form) and ``DIRECTORY/prefix`` (the exported algorithm) ready and a
MessageHandler listening at ADDRESS. It does what
``beat.backend.python.scripts.execute.main`` does: AlgorithmExecutor's setup,
prepare and process, a failure of each turned into a user error with the
traceback cut to the algorithm's own frames, anything else a system error, sent
as ``err usr|sys`` to the handler; success sends ``don`` with BEAT's I/O
statistics (from AlgorithmExecutor.done).

Two changes to its text, for people reading it: a user error is sent as its message
(execute.py sends ``str(UserError)``, which is its ``repr``: quoted, newlines escaped)
and a newline separates the algorithm's stack from the exception's line.

Not done, on purpose: its version banner (``pkg_resources.require`` fails on
1.7.15's normalised distribution name, so the installed ``execute`` script
cannot start here) and its switch to the configuration's ``uid`` (the element
already runs as the experiment's Slurm user). Imports only beat and the
standard library: it runs by path, outside the bridge package.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

import zmq
from beat.backend.python.exceptions import UserError
from beat.backend.python.execution import AlgorithmExecutor
from beat.backend.python.scripts.execute import close, process_traceback, send_error


def _user_step(executor: AlgorithmExecutor, step: str) -> None:
    """One of setup/prepare/process; False or an exception is the algorithm's error (as execute.py says it)."""
    try:
        status = getattr(executor, step)()
    except (UserError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - whatever the algorithm raises is its error
        stack = traceback.extract_tb(sys.exc_info()[2])
        raise UserError(f"{process_traceback(stack, executor.prefix)}\n{type(e).__name__}: {e}") from e
    if not status:
        word = {"setup": "setup", "prepare": "prepare", "process": "run"}[step]
        raise UserError(f"Could not {word} algorithm (returned False)")


def run(cache: str, address: str, directory: str) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger = logging.getLogger("beat_exec")
    context = zmq.Context()
    socket = context.socket(zmq.PAIR)
    socket.connect(address)
    try:
        executor = AlgorithmExecutor(socket, directory, cache_root=cache)
        for step in ("setup", "prepare", "process"):
            _user_step(executor, step)
    except UserError as e:
        send_error(logger, socket, "usr", e.value if isinstance(e.value, str) else str(e))
        return 1
    except MemoryError:
        send_error(logger, socket, "usr", "The user process for this block ran out of memory.")
        return 1
    except Exception:  # noqa: BLE001 - BEAT's side failed (inputs unreadable, sink not created...)
        send_error(logger, socket, "sys", traceback.format_exc())
        return 1
    finally:
        close(logger, [socket], context)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a BEAT algorithm as beat.backend.python's execute does.")
    parser.add_argument("--cache", required=True, help="the cache root the configuration's paths are under")
    parser.add_argument("address", help="the MessageHandler's tcp:// address")
    parser.add_argument("directory", help="holds configuration.json and prefix/")
    args = parser.parse_args(argv)
    return run(args.cache, args.address, args.directory)


if __name__ == "__main__":
    sys.exit(main())
