"""beat-slurm-bridge: BEAT's execution backend on a Slurm cluster."""

from __future__ import annotations

__version__ = "0.1.0"
