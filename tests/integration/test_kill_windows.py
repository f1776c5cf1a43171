"""kill_windows.window reads where a killed `run` died from its log (lines as `beat-bridge -v run` writes them)."""

from __future__ import annotations

from kill_windows import window

T = "2026-12-01 14:17:52,248"
BEGINS = f"{T} DEBUG poller.loop: poll begins"
SQUEUE = f"{T} DEBUG bridge.runner: run ('squeue', '-h', '-t', 'all', '-j', '159', '-O', 'JobArrayID:|')"
FIND = f"{T} DEBUG bridge.runner: run ('squeue', '-h', '-t', 'all', '--name', 'bb-6b0ed70e-5bce-472-312565')"
MOVED = f"{T} INFO bridge.history: JobSplit 1 job 1, Slurm 159_0: N -> P (on_split_started)"
OVER = f"{T} DEBUG poller.loop: poll over: 2 active, 2 events committed"
SBATCH = f"{T} DEBUG bridge.runner: run ('sbatch', '--parsable')"
SUBMITTED = f"{T} INFO bridge.submit: array 159 (bb-6b0ed70f-5bce-4a8-f1a167) submitted to cpu: 2 splits of job 1"


def test_a_log_ending_after_sbatch_and_before_its_record_died_in_the_sbatch_window():
    assert window([BEGINS, OVER, SBATCH]) == "sbatch"
    assert window([BEGINS, OVER, SBATCH, SUBMITTED]) is None
    assert window([SBATCH, SUBMITTED, BEGINS, SQUEUE, OVER, SBATCH]) == "sbatch"


def test_a_log_ending_inside_a_poll_that_ran_squeue_died_in_the_poll_window():
    assert window([BEGINS, SQUEUE]) == "poll"
    assert window([BEGINS, SQUEUE, MOVED]) == "poll"
    assert window([BEGINS, SQUEUE, MOVED, OVER]) is None
    assert window([BEGINS]) is None  # squeue not yet called: nothing read
    assert window([BEGINS, SQUEUE, OVER, FIND]) is None  # the submitter's tag lookup is no poll
