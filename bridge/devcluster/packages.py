"""Debian packages the local cluster needs: find the missing ones, install them as root."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from bridge.errors import ClusterError, CommandError
from bridge.runner import Runner

# binary -> the Debian package that provides it
PACKAGES = {
    "slurmctld": "slurm-wlm", "slurmd": "slurm-wlm", "slurmdbd": "slurmdbd",
    "sbatch": "slurm-client", "sacct": "slurm-client", "munged": "munge",
}


def missing_packages(binaries: dict[str, str] = PACKAGES) -> list[str]:
    """Debian packages whose binaries are not on PATH (sbin included)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return sorted({pkg for binary, pkg in binaries.items() if not shutil.which(binary, path=path)})


def install_packages(packages: list[str], runner: Runner, say: Callable[[str], None]) -> None:
    """apt-get install the packages (root only); the error says what to run otherwise."""
    if not packages:
        return
    if os.geteuid() != 0:
        raise ClusterError(
            f"missing Debian packages {', '.join(packages)}; run this command as root, "
            f"or first: sudo apt-get install -y {' '.join(packages)}"
        )
    say(f"installing {' '.join(packages)} with apt-get (once)")
    try:
        runner.run(["apt-get", "update", "-qq"], timeout=600).check()
        runner.run(["apt-get", "install", "-y", "-qq", *packages], timeout=1200).check()
    except CommandError as e:
        raise ClusterError(f"apt-get could not install {' '.join(packages)}: {e}") from e
