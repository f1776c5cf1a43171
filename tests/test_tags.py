"""Submission tags: unique, readable back, and telling an abandoned claim from one still in hand."""

from __future__ import annotations

import os
import subprocess

from bridge.tags import HOST, abandoned, new_tag, parse_tag, tag_age


def test_a_tag_reads_back_its_time_host_and_pid_and_is_unique():
    tag = new_tag(now=1_800_000_000, pid=4242)
    parsed = parse_tag(tag)
    assert (parsed.made, parsed.host, parsed.pid) == (1_800_000_000, HOST, 4242)
    assert tag_age(tag, now=1_800_000_010) == 10
    assert new_tag() != new_tag()
    assert parse_tag("bb-zz") is None and tag_age("someone-else") is None


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
