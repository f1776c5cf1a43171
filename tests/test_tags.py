"""Submission tags: unique, readable back, and telling an abandoned claim from one still in hand."""

from __future__ import annotations

import os
import subprocess

import pytest

from bridge.tags import HOST, abandoned, new_tag, ours, parse_tag, tag_age


def test_a_tag_reads_back_its_deployment_time_host_and_pid_and_is_unique():
    tag = new_tag(now=1_800_000_000, pid=4242, deployment="prod2")
    assert tag.startswith(f"bb-prod2-6b49d200-{HOST}-1092-") and len(tag) == 34
    parsed = parse_tag(tag)
    assert (parsed.deployment, parsed.made, parsed.host, parsed.pid) == ("prod2", 1_800_000_000, HOST, 4242)
    assert tag_age(tag, now=1_800_000_010) == 10
    assert new_tag() != new_tag()
    assert parse_tag("bb-zz") is None and tag_age("someone-else") is None
    assert parse_tag(new_tag()).deployment == "main"  # the default deployment


def test_a_tag_from_before_deployments_still_reads_back_and_belongs_to_none():
    parsed = parse_tag("bb-6b0ed70e-5bce-472-312565")
    assert (parsed.deployment, parsed.made, parsed.host, parsed.pid) == (None, 0x6B0ED70E, "5bce", 0x472)
    assert not ours("bb-6b0ed70e-5bce-472-312565", "main")


def test_ours_is_this_deployment_only_and_the_longest_tag_fits_slurm_and_the_column():
    tag = new_tag(deployment="prod")
    assert ours(tag, "prod") and not ours(tag, "staging") and not ours(tag, "pro")
    assert not ours("bb-Prod-6b0ed70e-5bce-472-312565", "Prod")  # not a deployment's shape
    assert not ours("someone-else", "main") and not ours("bb-element-1234", "element")
    longest = new_tag(now=2**32 - 1, pid=2**22, deployment="z" * 16)  # time until 2106, Linux's largest pid
    assert len(longest) <= 49 and set(longest) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    for bad in ("", "Prod", "a-b", "x" * 17):
        with pytest.raises(ValueError, match="1 to 16 characters"):
            new_tag(deployment=bad)


def test_a_live_submitter_of_this_host_keeps_its_young_claim():
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        tag = new_tag(pid=sleeper.pid)
        assert not abandoned(tag, older_than=600)
        assert abandoned(tag, older_than=600, now=parse_tag(tag).made + 601)  # past any submission's time
    finally:
        sleeper.kill()
        sleeper.wait()
    assert abandoned(tag, older_than=600)  # its submitter is dead: settle it now


def test_this_process_claims_and_foreign_tags_are_settled_at_once():
    assert abandoned(new_tag(pid=os.getpid()), older_than=600)
    assert abandoned("not-a-bridge-tag", older_than=600)
    foreign_host = new_tag(pid=1).replace(f"-{HOST}-", "-zzzz-")
    assert not abandoned(foreign_host, older_than=600)  # another host's submitter may be alive
