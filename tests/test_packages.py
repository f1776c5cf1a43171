"""Which Debian packages the cluster lacks, and the message a non-root user gets."""

from __future__ import annotations

import pytest

from bridge.devcluster import packages
from bridge.errors import ClusterError
from bridge.runner import LocalRunner


def test_packages_whose_binaries_are_missing_are_named_once(monkeypatch):
    monkeypatch.setattr(packages.shutil, "which",
                        lambda binary, path=None: None if binary.startswith("slurm") else "/x")
    assert packages.missing_packages() == ["slurm-wlm", "slurmdbd"]


def test_a_non_root_user_is_told_what_to_install(monkeypatch):
    monkeypatch.setattr(packages.os, "geteuid", lambda: 1000)
    with pytest.raises(ClusterError) as e:
        packages.install_packages(["munge", "slurmdbd"], LocalRunner(), say=print)
    assert "run this command as root" in str(e.value)
    assert "sudo apt-get install -y munge slurmdbd" in str(e.value)


def test_nothing_missing_installs_nothing():
    packages.install_packages([], runner=None, say=print)  # would fail if it ran anything
