#!/usr/bin/env python3
"""Record real outputs of the Slurm commands the bridge runs, from the live local cluster.

Each scenario submits tiny job arrays (tag bb-rec-<scenario>-<hex>), runs the bridge's own
squeue/sacct/sbatch/scancel argv at chosen moments and writes tests/data/replay/<scenario>.json,
for unit tests that replay them through a fake command runner. Ids and tags are normalised:
the array id -> {job}, any other raw job id J+k of the scenario -> {job+k} / {job-k}, the tag ->
{tag} (see tests/data/replay/README.md). Everything submitted is scancelled, even on error.

The cluster must be up (`beat-bridge cluster up`). slurmdbd_down stops slurmdbd for a few
seconds, so it runs only with --outage and only while no pytest process runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from bridge.devcluster.cluster import load_spec
from bridge.slurm import sacct_argv, squeue_argv

REPO = Path(__file__).resolve().parent.parent
BEAT_BRIDGE = REPO / ".venv" / "bin" / "beat-bridge"
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}


class Skipped(Exception):
    """A scenario that chose not to run (e.g. slurmdbd_down while pytest runs)."""


def slurm_conf() -> str:
    """$SLURM_CONF, else the local cluster's slurm.conf."""
    return os.environ.get("SLURM_CONF") or str(load_spec().slurm_conf)


def script(tag: str, array: str, body: str, partition: str = "cpu", minutes: int = 2, hold: bool = False) -> str:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={tag}", f"#SBATCH --array={array}",
             f"#SBATCH --partition={partition}", f"#SBATCH --time={minutes}", "#SBATCH --mem=50",
             "#SBATCH --output=/tmp/replay-%A_%a.out"] + (["#SBATCH --hold"] if hold else [])
    return "\n".join(lines + [body, ""])


def rows(stdout: str) -> dict[str, list[str]]:
    """squeue -O ...:| or sacct --parsable2 lines by their first field (JobArrayID / JobID)."""
    return {cols[0]: cols for cols in (line.split("|") for line in stdout.splitlines() if line.strip())}


class Recorder:
    """Runs commands against the cluster, keeps the chosen calls and writes them normalised."""

    def __init__(self, scenario: str, conf: str) -> None:
        self.scenario, self.env = scenario, {**os.environ, "SLURM_CONF": conf}
        self.tag = f"bb-rec-{scenario.replace('_', '-')}-{secrets.token_hex(3)}"
        self.start = datetime.now().replace(microsecond=0) - timedelta(seconds=60)
        self.recorded = datetime.now().isoformat(timespec="seconds")
        self.t0 = time.monotonic()
        self.jobs: list[int] = []
        self.calls: list[dict] = []
        self.notes: list[str] = []
        self.array_size = 0

    def run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=self.env, timeout=60)

    def keep(self, name: str, argv: list[str], proc: subprocess.CompletedProcess, stdin: str | None = None) -> None:
        call = {"name": name, "argv": argv, "returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        if stdin is not None:
            call["stdin"] = stdin
        self.calls.append(call)
        self.notes.append(f"{name} at +{time.monotonic() - self.t0:.1f} s")

    def call(self, name: str, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        proc = self.run(argv, stdin)
        self.keep(name, argv, proc, stdin)
        return proc

    def poll(self, argv: list[str], ok: Callable[[subprocess.CompletedProcess], bool], timeout: float,
             every: float = 0.5, required: bool = True) -> subprocess.CompletedProcess:
        """Run argv until ok(answer) or timeout; then raise (required) or return the last answer with a note."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.run(argv)
            if ok(proc):
                return proc
            if time.monotonic() > deadline:
                if required:
                    raise TimeoutError(f"{argv[0]} not as awaited after {timeout:.0f} s: "
                                       f"{proc.stdout or proc.stderr!r}")
                self.notes.append(f"gave up waiting for {argv[0]} after {timeout:.0f} s")
                return proc
            time.sleep(every)

    def submit(self, text: str, name: str | None = "sbatch") -> int:
        argv = ["sbatch", "--parsable"]
        proc = self.call(name, argv, text) if name else self.run(argv, text)
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch failed: {proc.stderr.strip()}")
        job = int(proc.stdout.strip().split(";")[0])
        self.jobs.append(job)
        self.t0 = time.monotonic()
        return job

    def squeue(self, job: int) -> list[str]:
        return squeue_argv([job])

    def sacct(self, job: int) -> list[str]:
        return sacct_argv(self.start, None, job_ids=[job])

    def wait(self, argv: list[str], keys: list[str], col: int, want: Callable[[str], bool],
             timeout: float = 180, every: float = 0.5) -> subprocess.CompletedProcess:
        """Poll argv (squeue or sacct) until each key (e.g. J_0) has a row whose column col want() accepts;
        a final state that want() refuses (e.g. CANCELLED by someone else) ends the wait at once."""
        def ok(proc: subprocess.CompletedProcess) -> bool:
            got = rows(proc.stdout) if proc.returncode == 0 else {}
            values = [got[key][col] if len(got.get(key, ())) > col else "" for key in keys]
            wrong = [v for v in values if not want(v) and (v.split() or [""])[0] in ENDED]
            if wrong:
                raise RuntimeError(f"{argv[0]} shows {wrong} where {keys} were awaited: {proc.stdout!r}")
            return all(want(v) for v in values)
        return self.poll(argv, ok, timeout, every)

    def cleanup(self) -> None:
        if self.jobs:
            self.run(["scancel", *map(str, self.jobs)])
        for job in self.jobs:
            for path in Path("/tmp").glob(f"replay-{job}_*.out"):
                path.unlink(missing_ok=True)

    def save(self, out: Path, description: str) -> Path:
        job = self.jobs[0] if self.jobs else None
        subs = self._id_map(job) if job is not None else {}
        calls = [{**call, "argv": [normalise(a, self.tag, subs) for a in call["argv"]],
                  **{key: normalise(call[key], self.tag, subs) for key in ("stdout", "stderr")},
                  **({"stdin": call["stdin"].replace(self.tag, "{tag}")} if "stdin" in call else {})}  # no ids in it
                 for call in self.calls]
        version = self.run(["sinfo", "--version"]).stdout.split()[-1]
        doc = {"scenario": self.scenario, "description": f"{description} Timeline: {'; '.join(self.notes)}.",
               "slurm_version": version, "recorded": self.recorded, "array_size": self.array_size, "calls": calls}
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.scenario}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        stray = [c["name"] for c in calls if re.search(r"(?m)^\d", c["stdout"] + c["stderr"])]
        if stray:
            print(f"  warning: {self.scenario}: a line starts with a bare number in {stray}", file=sys.stderr)
        return path

    def _id_map(self, job: int) -> dict[int, str]:
        """Every raw id of the scenario: submitted ids and JobIDRaw (2nd column) of their rows."""
        raw = set(self.jobs)
        pattern = re.compile(rf"({'|'.join(map(str, self.jobs))})(_|$)")
        for call in self.calls:
            for cols in rows(call["stdout"]).values():
                if len(cols) > 1 and pattern.match(cols[0]) and cols[1].isdigit():
                    raw.add(int(cols[1]))
        return {r: "{job}" if r == job else f"{{job{r - job:+d}}}" for r in raw}


NUMBER = re.compile(r"(?<![\w:.\-/+\[])(\d+)(?![0-9A-Za-z.\-]|:\d)")


def normalise(text: str, tag: str, subs: dict[int, str]) -> str:
    """tag -> {tag}; a whole number that is a known raw id -> its placeholder. In "|"-separated rows
    only the first two fields (JobArrayID/JobID, JobID/JobIDRaw) hold ids: exit codes like 15 or 768
    are left alone even when a job has that id. Numbers touching a letter, digit, '-', '.', '[' or
    ':' + digit (timestamps, nodes, task ids) are never ids."""
    def ids(part: str) -> str:
        return NUMBER.sub(lambda m: subs.get(int(m.group(1)), m.group(1)), part)
    out = []
    for line in text.replace(tag, "{tag}").splitlines(keepends=True):
        cols = line.split("|")
        out.append("|".join([ids(c) for c in cols[:2]] + cols[2:]) if len(cols) > 1 else ids(line))
    return "".join(out)


def elements(job: int, n: int) -> list[str]:
    return [f"{job}_{i}" for i in range(n)]


def has_end(end: str) -> bool:
    return end not in ("", "Unknown")


def completed(r: Recorder) -> str:
    r.array_size = 2
    job = r.submit(script(r.tag, "0-1", "sleep 1"))
    r.keep("squeue", r.squeue(job), r.wait(r.squeue(job), elements(job, 2), 3, ENDED.__contains__, every=0.2))
    r.keep("sacct", r.sacct(job), r.wait(r.sacct(job), elements(job, 2), 9, has_end, 60))
    return "Array {job}_[0-1] `sleep 1` on cpu; squeue as soon as both elements had ended, sacct once both had End."


def running(r: Recorder) -> str:
    r.array_size = 2
    job = r.submit(script(r.tag, "0-1", "sleep 60"))
    r.wait(r.squeue(job), elements(job, 2), 3, "RUNNING".__eq__)
    r.keep("sacct", r.sacct(job), r.wait(r.sacct(job), elements(job, 2), 4, "RUNNING".__eq__, 60))
    r.call("squeue", r.squeue(job))
    r.call("scancel", ["scancel", *elements(job, 2)])
    cancelled = r.wait(r.squeue(job), elements(job, 2), 3, "CANCELLED".__eq__, every=0.2)
    r.keep("squeue_cancelled", r.squeue(job), cancelled)
    cancelled = r.wait(r.sacct(job), elements(job, 2), 4, lambda state: state.startswith("CANCELLED"), 60)
    r.keep("sacct_cancelled", r.sacct(job), cancelled)
    return ("Array {job}_[0-1] `sleep 60`; sacct once it showed both RUNNING, then squeue; scancel of both "
            "elements; squeue once both CANCELLED, sacct once both CANCELLED with End.")


def pending(r: Recorder) -> str:
    r.array_size = 3
    job = r.submit(script(r.tag, "0-2", "true", hold=True))
    r.keep("squeue", r.squeue(job), r.poll(r.squeue(job), lambda p: bool(p.stdout.strip()), 30))
    r.keep("sacct", r.sacct(job), r.poll(r.sacct(job), lambda p: bool(p.stdout.strip()), 20, required=False))
    r.call("scancel", ["scancel", str(job)])
    r.keep("squeue_cancelled", r.squeue(job), r.poll(r.squeue(job), lambda p: "CANCELLED" in p.stdout, 30))
    cancelled = r.poll(r.sacct(job), lambda p: "CANCELLED" in p.stdout, 30, required=False)
    r.keep("sacct_cancelled", r.sacct(job), cancelled)
    return ("Held array {job}_[0-2] (--hold, never started); squeue and sacct while pending; scancel of the "
            "whole array; squeue and sacct once they showed it CANCELLED.")


def failed(r: Recorder) -> str:
    r.array_size = 2
    body = 'if [ "$SLURM_ARRAY_TASK_ID" = 0 ]; then exit 3; else kill -9 $$; fi'
    job = r.submit(script(r.tag, "0-1", body))
    r.keep("squeue", r.squeue(job), r.wait(r.squeue(job), elements(job, 2), 3, ENDED.__contains__, every=0.2))
    r.keep("sacct", r.sacct(job), r.wait(r.sacct(job), elements(job, 2), 9, has_end, 60))
    return ("Array {job}_[0-1]: element 0 `exit 3`, element 1 `kill -9 $$`; squeue as soon as both had ended, "
            "sacct once both had End.")


def sacct_lag(r: Recorder) -> str:
    r.array_size = 1
    job = r.submit(script(r.tag, "0", "sleep 2"))
    r.wait(r.squeue(job), [f"{job}_0"], 3, "COMPLETED".__eq__, every=0.1)
    deadline, first, last = time.monotonic() + 4, None, None
    while time.monotonic() < deadline:
        proc = r.run(r.sacct(job))
        if proc.returncode == 0 and f"{job}_0" in rows(proc.stdout):
            break
        if proc.returncode == 0 and first is None:
            first = proc
            r.keep("sacct_lag", r.sacct(job), proc)
            r.call("squeue", r.squeue(job))
        elif proc.returncode == 0:
            last = proc
        time.sleep(0.2)
    if first is None:
        r.notes.append("lag NOT reproduced: every sacct since squeue showed COMPLETED listed {job}_0")
        r.call("squeue", r.squeue(job))
    if last is not None and last.stdout != first.stdout:
        r.keep("sacct_lag_last", r.sacct(job), last)
    r.keep("sacct", r.sacct(job), r.wait(r.sacct(job), [f"{job}_0"], 9, has_end, 60))
    return ("1-element array {job}_[0] `sleep 2`; sacct every 0.2 s (up to 4 s) from the moment squeue showed it "
            "COMPLETED until it listed {job}_0: sacct_lag is the first answer without a {job}_0 row, squeue was "
            "taken right after it, sacct_lag_last (if any) the last such answer when it differs; sacct is settled.")


def find(r: Recorder) -> str:
    r.array_size = 1
    job = r.submit(script(r.tag, "0", "sleep 30", hold=True))
    by_tag = ["squeue", "-h", "-t", "all", "--name", r.tag, "-o", "%F"]
    r.keep("find_squeue", by_tag, r.poll(by_tag, lambda p: str(job) in p.stdout, 30))
    r.poll(r.sacct(job), lambda p: str(job) in p.stdout, 30)  # slurmdbd knows the job by id...
    find_sacct = sacct_argv(r.start, names=[r.tag], fields=("JobID",))
    r.call("find_sacct_held", find_sacct)  # ...but a held job (Eligible Unknown) is not in the -S/-E window
    r.run(["scontrol", "release", str(job)])
    r.keep("find_sacct", find_sacct, r.poll(find_sacct, lambda p: str(job) in p.stdout, 30))
    unused = f"{r.tag}-unused"
    r.call("find_squeue_unknown", ["squeue", "-h", "-t", "all", "--name", unused, "-o", "%F"])
    r.call("find_sacct_unknown", sacct_argv(r.start, names=[unused], fields=("JobID",)))
    r.call("scancel", ["scancel", str(job)])
    return ("Held 1-element array {job}_[0] `sleep 30` named {tag}: find_squeue while held; find_sacct_held "
            "once sacct -j listed it (sacct --name does not list a held job); then `scontrol release`, "
            "find_sacct once sacct --name listed it; the same for {tag}-unused, a name nobody used; scancel.")


def sbatch(r: Recorder) -> str:
    r.array_size = 2
    job = r.submit(script(r.tag, "0-1", "true", hold=True))
    r.run(["scancel", str(job)])
    r.call("sbatch_bad_partition", ["sbatch", "--parsable"], script(r.tag, "0-1", "true", partition="nosuch"))
    bad_time = r.call("sbatch_bad_time", ["sbatch", "--parsable"], script(r.tag, "0-1", "true", "debug", 10))
    if bad_time.returncode == 0:
        r.jobs.append(int(bad_time.stdout.strip().split(";")[0]))
    return ("sbatch --parsable of a held array {job}_[0-1] (cancelled right after); the same script with "
            "--partition=nosuch; and with --partition=debug --time=10 (debug's MaxTime is 5 min).")


def unknown_ids(r: Recorder) -> str:
    r.array_size = 1
    job = r.submit(script(r.tag, "0", "true"), name=None)
    r.call("squeue", squeue_argv([999999]))
    r.call("scancel_unknown", ["scancel", "999999"])
    r.wait(r.squeue(job), [f"{job}_0"], 3, ENDED.__contains__, every=0.2)
    r.call("scancel_finished", ["scancel", f"{job}_0"])
    return ("squeue and scancel of 999999, an id that never existed (kept literally); scancel of {job}_0, "
            "a 1-element array `true` that squeue showed COMPLETED.")


def slurmdbd_down(r: Recorder) -> str:
    deadline = time.monotonic() + 600
    while subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            raise Skipped("pytest still running after 10 minutes: slurmdbd left alone")
        print("  slurmdbd_down: waiting for pytest to end", flush=True)
        time.sleep(15)
    r.array_size = 1
    job = r.submit(script(r.tag, "0", "true", hold=True), name=None)
    r.poll(r.sacct(job), lambda p: str(job) in p.stdout, 30)
    try:
        subprocess.run([str(BEAT_BRIDGE), "cluster", "stop", "slurmdbd"], check=True, timeout=120)
        r.call("sacct", r.sacct(job))
        r.call("find_sacct", sacct_argv(r.start, names=[r.tag], fields=("JobID",)))
        r.call("squeue", r.squeue(job))
    finally:
        subprocess.run([str(BEAT_BRIDGE), "cluster", "start", "slurmdbd"], check=True, timeout=300)
    r.poll(r.sacct(job), lambda p: p.returncode == 0, 60)  # slurmdbd answers again
    return ("Held 1-element array {job}_[0] named {tag}, known to sacct; then `beat-bridge cluster stop slurmdbd`: "
            "sacct by id, sacct by name and squeue during the outage; slurmdbd restarted afterwards.")


SCENARIOS: dict[str, Callable[[Recorder], str]] = {f.__name__: f for f in (
    completed, running, pending, failed, sacct_lag, find, sbatch, unknown_ids, slurmdbd_down)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), metavar="SCENARIO",
                        help=f"record only these ({', '.join(SCENARIOS)}); default: all but slurmdbd_down")
    parser.add_argument("--outage", action="store_true",
                        help="also record slurmdbd_down (stops slurmdbd briefly; waits up to 10 min for pytest to end)")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "replay", help="output folder")
    args = parser.parse_args(argv)
    names = args.only or [n for n in SCENARIOS if n != "slurmdbd_down"] + (["slurmdbd_down"] if args.outage else [])
    conf, failures = slurm_conf(), 0
    for name in names:
        if name == "slurmdbd_down" and not args.outage:
            print(f"{name}: skipped (needs --outage)")
            continue
        recorder = Recorder(name, conf)
        try:
            path = recorder.save(args.out, SCENARIOS[name](recorder))
            print(f"{name}: {len(recorder.calls)} calls -> {path}", flush=True)
        except Skipped as why:
            print(f"{name}: skipped: {why}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next scenario
            failures += 1
            print(f"{name}: FAILED: {exc}", flush=True)
        finally:
            recorder.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
