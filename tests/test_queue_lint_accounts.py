"""Accounts, QOS and associations (recorded `sacctmgr show`), sbatch --test-only and bash -n answers, and the
whole lint run through a runner that answers only the commands it was given."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bridge import slurm as cmds
from bridge import slurm_checks as checks
from bridge.errors import BridgeError
from bridge.queue_lint_accounts import account_findings, effective_qos
from bridge.queue_lint_run import lint_mapping
from bridge.queues_config import QueueConfig
from bridge.runner import CommandResult
from bridge.slurm_client import SlurmClient

DATA = Path(__file__).parent / "data"
LINT = DATA / "lint"
GOOD = QueueConfig("default", "cpu", memory_limit=1000, time_limit=30, cores_per_slot=1, max_slots_per_user=4)


def _facts(user_file: str = "sacctmgr_user_withassoc.txt", user: str = "root") -> checks.AccountingFacts:
    texts = {"accounts": (LINT / "sacctmgr_accounts.txt").read_text() + "lab1\nlab2\nlab3\n",
             "qos": (LINT / "sacctmgr_qos.txt").read_text() + "high\n", "user": (LINT / user_file).read_text()}
    return checks.accounting_facts(user, "beatlocal", texts)


def test_recorded_sacctmgr_gives_accounts_qos_default_account_and_associations():
    facts = _facts()
    assert facts.accounts == {"beat", "root", "lab1", "lab2", "lab3"} and facts.qos == {"normal", "high"}
    assert facts.default_account == "root"
    assert facts.associations == (checks.Association("beat", "", ("normal",), ""),
                                  checks.Association("root", "", ("normal",), ""))


def test_other_clusters_rows_are_left_out():
    facts = _facts("sacctmgr_user_withassoc_partitions.txt", "alice")
    assert [a.account for a in facts.associations] == ["lab1", "lab2"]


def test_sacctmgr_argv_is_a_list_and_refuses_odd_names():
    argvs = checks.accounting_argvs("root", "beatlocal")
    assert argvs["user"] == ["sacctmgr", "-n", "-P", "show", "user", "withassoc", "where", "name=root",
                             "cluster=beatlocal", "format=" + ",".join(checks.USER_FIELDS)]
    with pytest.raises(BridgeError, match="cannot select"):
        checks.accounting_argvs("root x", "beatlocal")


def test_a_row_of_another_width_is_a_parse_error_and_a_trailing_bar_is_not():
    assert checks.parse_sacctmgr("a|b|\n", ("X", "Y")) == [{"X": "a", "Y": "b"}]
    with pytest.raises(cmds.SlurmParseError, match="4 fields where 2"):
        checks.parse_sacctmgr("a|b|c|d\n", ("X", "Y"))


@pytest.mark.parametrize(
    ("changes", "rules", "allowed"),
    [({}, [], None), ({"account": "beat", "qos": "normal"}, [], None),
     ({"account": "nosuch"}, ["account"], "beat, lab1, lab2, lab3, root"),
     ({"qos": "nosuch"}, ["qos"], "high, normal"), ({"qos": "high"}, ["qos_allowed"], "normal"),
     ({"account": "lab1"}, ["association"], "beat, root")],
)
def test_account_rules_for_user_root(changes: dict, rules: list[str], allowed: str | None):
    found = account_findings(replace(GOOD, **changes), _facts())
    assert [f.rule for f in found] == rules
    if allowed is not None:
        assert found[0].allowed == allowed


def test_a_partition_specific_association_counts_only_for_its_partition():
    facts = _facts("sacctmgr_user_withassoc_partitions.txt", "alice")
    on_gpu = replace(GOOD, partition="gpu", account="lab2", qos="high")
    assert account_findings(on_gpu, facts) == []
    [finding] = account_findings(replace(on_gpu, partition="cpu"), facts)
    assert finding.line() == ("queues.default.account = 'lab2': user alice has no association with account "
                              "'lab2' on cluster 'beatlocal' for partition 'cpu'; allowed: lab1")
    assert [f.rule for f in account_findings(replace(on_gpu, qos="normal"), facts)] == ["qos_allowed"]


def test_no_account_and_no_default_account():
    facts = replace(_facts(), default_account=None)
    [finding] = account_findings(GOOD, facts)
    assert finding.rule == "association" and "names no account and user root has no default account" in finding.problem


def test_the_qos_slurm_picks():
    facts = _facts("sacctmgr_user_withassoc_partitions.txt", "alice")
    assert effective_qos(GOOD, facts) == "normal"  # the association's DefaultQOS
    assert effective_qos(replace(GOOD, partition="gpu", account="lab2"), facts) == "high"  # its only QOS
    assert effective_qos(replace(GOOD, qos="x"), facts) == "x"
    assert effective_qos(GOOD, None) is None


def test_an_unreadable_slurmdbd_is_a_finding_not_a_crash():
    [finding] = account_findings(GOOD, None, "sacctmgr show account: connection refused")
    assert finding.rule == "could_not_check" and "could not check" in finding.line()


@pytest.mark.parametrize(
    ("name", "returncode", "error"),
    [("test_only_accepted.stderr", 0, None),
     ("test_only_unrecognized.stderr", 255, "sbatch: unrecognized option '--no-such-option=1'"),
     ("test_only_fatal.stderr", 1, "sbatch: fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive."),
     ("test_only_time.stderr", 1, "allocation failure: Requested time limit is invalid (missing or exceeds some "
                                  "limit)")],
)
def test_sbatch_test_only_answers(name: str, returncode: int, error: str | None):
    assert checks.refusal_of_test_only(returncode, "", (LINT / name).read_text()) == error


def test_test_only_without_a_start_time_is_not_taken_for_acceptance():
    assert "printed no start time" in (checks.refusal_of_test_only(0, "", "sbatch: something else\n") or "")


def test_bash_n_answers():
    assert checks.bash_syntax_error(0, "") is None
    assert checks.bash_syntax_error(2, (LINT / "bash_n.stderr").read_text()) == (
        "bash: line 3: syntax error: unexpected end of file")


class Answers:
    """A runner answering only the commands it was given: by argv[0], `sacctmgr <what>`, `scontrol <what>`."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        self.answers, self.calls = answers, []

    def run(self, argv, stdin=None, timeout=60.0) -> CommandResult:
        key = f"{argv[0]} {argv[4] if argv[0] == 'sacctmgr' else argv[-1]}" if "show" in argv else argv[0]
        self.calls.append((key, stdin))
        if key not in self.answers:
            raise AssertionError(f"unexpected command {argv}")
        code, out, err = self.answers[key]
        return CommandResult(tuple(argv), code, out, err)


def _answers(**overrides: tuple[int, str, str]) -> Answers:
    read = {"sacctmgr account": "sacctmgr_accounts.txt", "sacctmgr qos": "sacctmgr_qos.txt",
            "sacctmgr user": "sacctmgr_user_withassoc.txt"}
    answers = {key: (0, (LINT / name).read_text(), "") for key, name in read.items()}
    answers |= {"scontrol partition": (0, (DATA / "scontrol_show_partition.txt").read_text(), ""),
                "scontrol config": (0, (DATA / "scontrol_show_config.txt").read_text(), ""),
                "sinfo": (0, (DATA / "sinfo_nodes.txt").read_text(), ""), "id": (0, "root\n", ""),
                "bash": (0, "", ""), "sbatch": (0, "", (LINT / "test_only_accepted.stderr").read_text())}
    answers.update(overrides)
    return Answers(answers)


def test_the_whole_lint_of_a_clean_mapping_runs_each_script_through_bash_and_sbatch():
    runner = _answers()
    assert lint_mapping({"default": GOOD}, {}, SlurmClient(runner)) == []
    scripts = [stdin for key, stdin in runner.calls if key in ("bash", "sbatch")]
    assert len(scripts) == 2 and scripts[0] == scripts[1] and "#SBATCH --partition=cpu" in scripts[0]


def test_the_whole_lint_names_slurmdbd_down_and_a_refused_script_per_queue():
    runner = _answers(**{"sacctmgr account": (1, "", (LINT / "sacctmgr_slurmdbd_down.stderr").read_text()),
                         "sbatch": (255, "", (LINT / "test_only_unrecognized.stderr").read_text())})
    found = lint_mapping({"default": GOOD, "debug": replace(GOOD, name="debug", partition="debug")}, {},
                         SlurmClient(runner))
    assert [(f.queue, f.rule) for f in found] == [
        ("default", "could_not_check"), ("default", "sbatch_test_only"),
        ("debug", "max_time"), ("debug", "could_not_check"), ("debug", "sbatch_test_only")]
    assert "failed to open persistent connection" in found[0].problem
    assert found[1].line() == ("queues.default.template: sbatch --test-only refuses the script rendered from the "
                               "shipped array.sbatch.j2: sbatch: unrecognized option '--no-such-option=1'")
