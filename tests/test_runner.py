"""The local runner: argv in, exit code and output back, timeouts and missing programs as errors."""

from __future__ import annotations

import pytest

from bridge.errors import CommandError, CommandTimeout
from bridge.runner import LocalRunner


def test_returns_exit_code_stdout_and_stderr():
    result = LocalRunner().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok
    with pytest.raises(CommandError) as e:
        result.check()
    assert e.value.returncode == 3 and "err" in str(e.value)


def test_stdin_reaches_the_command_and_is_not_interpreted_by_a_shell():
    hostile = "$(touch /tmp/never) `id` ; rm -rf /\n"
    result = LocalRunner().run(["cat"], stdin=hostile)
    assert result.stdout == hostile


def test_argv_values_are_never_shell_words():
    result = LocalRunner().run(["printf", "%s|", "a b", "$(id)", ";", "*"])
    assert result.stdout == "a b|$(id)|;|*|"


def test_environment_is_passed_to_the_command():
    result = LocalRunner(env={"BRIDGE_TEST_VALUE": "x y"}).run(["sh", "-c", 'printf %s "$BRIDGE_TEST_VALUE"'])
    assert result.stdout == "x y"


def test_timeout_raises_command_timeout():
    with pytest.raises(CommandTimeout) as e:
        LocalRunner().run(["sleep", "5"], timeout=0.2)
    assert e.value.argv == ["sleep", "5"] and "timed out" in str(e.value)


def test_missing_program_is_a_command_error_naming_it():
    with pytest.raises(CommandError) as e:
        LocalRunner().run(["/nonexistent/sbatch", "--parsable"])
    assert e.value.returncode == 127 and "/nonexistent/sbatch" in str(e.value)
