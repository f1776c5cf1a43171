"""The array's sbatch script: golden files, the one sorted directive mapping, and hostile values.

sbatch_unquote mirrors sbatch's own #SBATCH parser; the hostile script was also submitted
once by hand (held, then cancelled) to the local Slurm 22.05.8, and `scontrol show job`
showed JobName and Comment exactly equal to the hostile values.

Golden files are compared byte for byte; regenerate them after an intended change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render.py` and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from bridge.errors import BridgeError
from bridge.render import (
    ArraySpec,
    TemplateError,
    UnsafeValueError,
    compact_ranges,
    package_templates_dir,
    parse_directive,
    render_array_script,
    sbatch_directives,
    sbatch_quote,
    sbatch_unquote,
)

GOLDEN = Path(__file__).parent / "data" / "golden"
HOSTILE = "it's \"x\" $(touch PWNED1) `touch PWNED2`; touch PWNED3 & | > PWNED4 # \\ ${HOME} * packjob"

BASIC = ArraySpec(
    job_name="bb-3f2a9c",
    submission_tag="bb-3f2a9c",
    partition="cpu",
    cpus_per_task=1,
    mem_mb=1000,
    time_minutes=30,
    array_indices=(0, 1, 2, 3),
    output="/var/spool/bridge/job-7/slurm-%A_%a.out",
    error="/var/spool/bridge/job-7/slurm-%A_%a.err",
    python="/usr/bin/python3",
    element_runner="bridge.sbatch_scripts.element",
    spool_dir="/var/spool/bridge/job-7",
)
FULL = dataclasses.replace(
    BASIC,
    partition="long",
    cpus_per_task=2,
    mem_mb=2000,
    time_minutes=1440,
    array_indices=(0, 1, 2, 3, 5, 9, 10),
    throttle=4,
    account="lab1",
    qos="normal",
    comment="experiment user/toolchain/1/exp",
    extra_directives=("--constraint=\"intel&avx\"", "--exclusive"),
    env=(("OMP_NUM_THREADS", "2"), ("BEAT_CACHE", "/data/beat cache")),
    element_runner="/opt/bridge/sbatch_scripts/element.py",
)
HOSTILE_NAME = HOSTILE.replace("|", "^")  # "|" and "," are refused in job names (sacct)
HOSTILE_SPEC = dataclasses.replace(
    BASIC,
    job_name=HOSTILE_NAME,
    comment=HOSTILE,
    output=f"/tmp/{HOSTILE}/%A_%a.out",
    error=f"/tmp/{HOSTILE}/%A_%a.err",
    spool_dir=HOSTILE,
    env=(("BEAT_NAME", HOSTILE),),
)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text()


@pytest.mark.parametrize(("name", "spec"), [("basic", BASIC), ("full", FULL), ("hostile", HOSTILE_SPEC)])
def test_golden(name: str, spec: ArraySpec) -> None:
    check_golden(f"array_{name}.sbatch", render_array_script(spec))


def test_directives_are_one_sorted_mapping() -> None:
    directives = sbatch_directives(FULL)
    assert list(directives) == sorted(directives)
    assert directives["array"] == "0-3,5,9-10%4"
    assert directives["mem"] == "2000M" and directives["time"] == "1440"
    assert directives["constraint"] == "intel&avx" and directives["exclusive"] is None
    assert directives["comment"] == "bb-3f2a9c experiment user/toolchain/1/exp"
    script = render_array_script(FULL)
    lines = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert len(lines) == len(directives)


@pytest.mark.parametrize(
    ("indices", "expected"),
    [((0,), "0"), ((0, 1, 2, 3, 5), "0-3,5"), ((7, 3, 4, 3), "3-4,7"), ((1, 3, 5), "1,3,5"), (range(1000), "0-999")],
)
def test_compact_ranges(indices, expected: str) -> None:
    assert compact_ranges(indices) == expected


@pytest.mark.parametrize("indices", [(), (-1, 0)])
def test_compact_ranges_rejects(indices) -> None:
    with pytest.raises(UnsafeValueError):
        compact_ranges(indices)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("--a=b", ["--a=b"]),
        ('--a="b c" --d', ["--a=b c", "--d"]),
        ("--a='b \"c'", ['--a=b "c']),
        ('--a="b\\"c\\\\d"', ['--a=b"c\\d']),
        ("--a=b # comment", ["--a=b"]),
        ('--a="b # c"', ["--a=b # c"]),
        ("--a='x\\'y'", ["--a=x'y"]),  # sbatch, unlike bash, escapes inside single quotes
    ],
)
def test_sbatch_unquote_follows_sbatch_rules(line: str, words: list[str]) -> None:
    assert sbatch_unquote(line) == words


@pytest.mark.parametrize(
    "value", ["plain", "a b", HOSTILE, "'", '"', "\\", "#", "%A_%a", "x\\", "ünïcode ✓", "packjob", ""]
)
def test_sbatch_quote_round_trips(value: str) -> None:
    assert sbatch_unquote(f"--job-name={sbatch_quote(value)}") == [f"--job-name={value}"]


def test_hostile_directives_stay_single_arguments() -> None:
    """Every #SBATCH line of the hostile script is one option whose value is the original text."""
    directives = sbatch_directives(HOSTILE_SPEC)
    for line in render_array_script(HOSTILE_SPEC).splitlines():
        if not line.startswith("#SBATCH"):
            continue
        words = sbatch_unquote(line[len("#SBATCH") :])
        assert len(words) == 1, line
        name, _, value = words[0][2:].partition("=")
        assert directives[name] == (value if "=" in words[0] else None)
    assert directives["job-name"] == HOSTILE_NAME
    assert directives["comment"] == f"{BASIC.submission_tag} {HOSTILE}"


@pytest.mark.parametrize(("name", "tag"), [("a|b", "t"), ("a,b", "t"), ("", "t"), ("n", " ")])
def test_job_name_must_stay_findable_by_sacct(name: str, tag: str) -> None:
    with pytest.raises(UnsafeValueError, match="sacct"):
        sbatch_directives(dataclasses.replace(BASIC, job_name=name, submission_tag=tag))


@pytest.mark.parametrize(
    "field", ["job_name", "comment", "output", "spool_dir", "python", "partition", "submission_tag"]
)
@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "x\n#SBATCH --wrap=id"])
def test_control_characters_are_refused(field: str, bad: str) -> None:
    with pytest.raises(UnsafeValueError, match="control character"):
        render_array_script(dataclasses.replace(BASIC, **{field: bad}))


def test_env_with_newline_and_bad_name_refused() -> None:
    with pytest.raises(UnsafeValueError):
        render_array_script(dataclasses.replace(BASIC, env=(("X", "a\nrm -rf /"),)))
    with pytest.raises(UnsafeValueError, match="environment variable name"):
        render_array_script(dataclasses.replace(BASIC, env=(("X=1;id", "a"),)))


@pytest.mark.parametrize(
    ("directive", "match"),
    [("--partition=debug", "conflicts"), ("-N 1", "long sbatch option"), ("--x=a b", "exactly one value"),
     ("--x=1\n--y", "control character")],
)
def test_bad_extra_directives(directive: str, match: str) -> None:
    with pytest.raises(UnsafeValueError, match=match):
        sbatch_directives(dataclasses.replace(BASIC, extra_directives=(directive,)))


def test_parse_directive() -> None:
    assert parse_directive("--gres=gpu:1") == ("gres", "gpu:1")
    assert parse_directive("--mail-user='a b'") == ("mail-user", "a b")
    assert parse_directive("--exclusive") == ("exclusive", None)


@pytest.mark.parametrize(
    ("field", "value"), [("mem_mb", 0), ("cpus_per_task", -1), ("time_minutes", True), ("throttle", 0)]
)
def test_bad_numbers(field: str, value: object) -> None:
    with pytest.raises(UnsafeValueError):
        sbatch_directives(dataclasses.replace(BASIC, **{field: value}))


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_hostile_script_passes_bash_syntax_check(tmp_path: Path) -> None:
    script = tmp_path / "hostile.sbatch"
    script.write_text(render_array_script(HOSTILE_SPEC))
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_hostile_script_runs_with_literal_values(tmp_path: Path) -> None:
    """Run the rendered script with a fake python that records its argv and env: nothing else runs."""
    record = tmp_path / "record.json"
    fake = tmp_path / "fake-python"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], "
        f"'env': {{k: os.environ.get(k) for k in ('BEAT_NAME', 'BEAT_SUBMISSION_TAG')}}}},"
        f" open({str(record)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    spec = dataclasses.replace(HOSTILE_SPEC, python=str(fake), submission_tag="tag-1")
    script = tmp_path / "hostile.sbatch"
    script.write_text(render_array_script(spec))
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": "3", "HOME": "/nonexistent"}
    subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, check=True, timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-python", "hostile.sbatch", "record.json"]
    seen = json.loads(record.read_text())
    assert seen["argv"] == ["-m", BASIC.element_runner, "--spool", HOSTILE, "--index", "3"]
    assert seen["env"] == {"BEAT_NAME": HOSTILE, "BEAT_SUBMISSION_TAG": "tag-1"}


def test_body_words_are_literal_under_shlex() -> None:
    exec_line = next(line for line in render_array_script(HOSTILE_SPEC).splitlines() if line.startswith("exec "))
    words = shlex.split(exec_line)
    assert words[words.index("--spool") + 1] == HOSTILE


def test_package_templates_are_importable() -> None:
    files = resources.files("bridge.templates")
    assert (files / "array.sbatch.j2").is_file()
    assert (package_templates_dir() / "array.sbatch.j2").is_file()


def test_admin_dir_overrides_and_queue_template_path(tmp_path: Path) -> None:
    admin = tmp_path / "admin"
    admin.mkdir()
    (admin / "array.sbatch.j2").write_text("admin {{ directives['partition'] | sbatchquote }}\n")
    assert render_array_script(BASIC, search_path=[admin]) == "admin cpu\n"
    override = tmp_path / "queue" / "gpu.j2"
    override.parent.mkdir()
    override.write_text("{% extends 'array.sbatch.j2' %}")
    assert render_array_script(BASIC, template=override, search_path=[override.parent]) == render_array_script(BASIC)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{% for x in %}", r"bad\.j2 line 1: syntax error"),
        ("{{ nothing_here | shquote }}", r"bad\.j2: undefined variable: 'nothing_here' is undefined"),
        ("{{ spec.nothing | shquote }}", r"bad\.j2: undefined variable"),
        ("x\n{{ spec.job_name }}", r"bad\.j2 line 2: an output is not quoted in '\{\{ spec.job_name \}\}'"),
        ("{{ spec.job_name | shquote | upper }}", r"bad\.j2 line 1: an output is not quoted"),
        ("{% if spec.qos %}{{ spec.qos }}{% endif %}", r"bad\.j2 line 1: an output is not quoted"),
        ("{% filter upper %}{{ spec.job_name | shquote }}{% endfilter %}", r"line 1: a \{% filter %\} block"),
        ("{{ spec.__class__ | raw }}", r"bad\.j2: access to attribute '__class__' .* is unsafe"),
        ("{{ spec.env.__len__() | raw }}", r"bad\.j2: .*unsafe"),
    ],
)
def test_bad_templates(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "bad.j2").write_text(text)
    with pytest.raises(TemplateError, match=match) as info:
        render_array_script(BASIC, template="bad.j2", search_path=[tmp_path])
    assert isinstance(info.value, BridgeError)


def test_missing_template(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"template nope\.j2 not found in .*admin"):
        render_array_script(BASIC, template="nope.j2", search_path=[tmp_path / "admin"])


def test_an_absolute_template_outside_the_templates_directories_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.j2"
    outside.write_text("{{ spec.job_name | shquote }}\n")
    with pytest.raises(TemplateError, match="outside the templates directories"):
        render_array_script(BASIC, template=outside, search_path=[tmp_path / "admin"])
    assert render_array_script(BASIC, template=outside, search_path=[tmp_path]) == "bb-3f2a9c\n"


def test_values_are_output_only_through_the_quoting_filters() -> None:
    from bridge.render import Quoted, _finalize

    assert _finalize(Quoted("x")) == "x"
    with pytest.raises(TemplateError, match="without a quoting filter"):
        _finalize("$(id)")


def test_a_directory_in_an_output_pattern_keeps_its_percent_signs_literal() -> None:
    from bridge.render import slurm_filename

    assert slurm_filename("/spool/100% %j") == "/spool/100%% %%j"
    with pytest.raises(UnsafeValueError, match="backslash"):
        slurm_filename("/spool/a\\b")


def test_a_comment_over_slurms_limit_is_cut_at_a_character_and_marked() -> None:
    from bridge.render import SLURM_TEXT_MAX, bounded_comment

    assert bounded_comment("short ✓") == "short ✓"
    cut = bounded_comment("✓" * 2000)
    assert cut.endswith(" …") and len(cut.encode()) <= SLURM_TEXT_MAX and set(cut[:-2]) == {"✓"}


def test_a_kept_template_is_reused_until_edited_even_within_one_mtime_tick_or_overridden(tmp_path: Path) -> None:
    """Environments are kept between renders (one compile per template, not per queue and render): an admin's
    edit must still show at the next render, also on a file system whose mtime did not move (coarse NFS
    clocks), and so must an override put into an earlier directory of the search path."""
    from bridge.render import _environment

    admin, base = tmp_path / "admin", tmp_path / "base"
    admin.mkdir()
    base.mkdir()
    template = base / "q.j2"
    template.write_text("first {{ spec.partition | sbatchquote }}\n")
    path = [admin, base]
    assert render_array_script(BASIC, template="q.j2", search_path=path) == "first cpu\n"
    env = _environment(path)
    assert env.get_template("q.j2") is env.get_template("q.j2")  # compiled once, reused
    mtime = template.stat().st_mtime_ns
    template.write_text("second {{ spec.partition | sbatchquote }}\n")
    os.utime(template, ns=(mtime, mtime))
    assert render_array_script(BASIC, template="q.j2", search_path=path) == "second cpu\n"
    (admin / "q.j2").write_text("override {{ spec.partition | sbatchquote }}\n")
    assert render_array_script(BASIC, template="q.j2", search_path=path) == "override cpu\n"
