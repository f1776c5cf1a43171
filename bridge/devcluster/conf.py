"""The local dev/test cluster's configuration: one frozen spec, pure renderers for its files.

Slurm 22.05 from Debian, everything on loopback, every file under one state
directory. The settings and why they are here come from ../shared/slurm-notes.md
(what was seen to work on this kind of machine: no systemd, no usable cgroups).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bridge.devcluster.paths import slurm_conf_in


@dataclass(frozen=True)
class Node:
    """One slurmd, started as `slurmd -N name` on its own port."""

    name: str
    port: int
    cpus: int = 4
    memory_mb: int = 4000


@dataclass(frozen=True)
class Partition:
    """A Slurm partition: the bridge's queues map onto these."""

    name: str
    max_time: str
    default: bool = False
    max_nodes: int | None = None


@dataclass(frozen=True)
class ClusterSpec:
    """Where the local cluster lives and what it looks like."""

    state_dir: Path
    hostname: str
    cluster_name: str = "beatlocal"
    ctld_port: int = 16817
    dbd_port: int = 16819
    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "root"
    mysql_password: str = ""
    # The accounting database: new with each new state directory, so job ids never collide.
    database: str = "beatbridge_acct"
    nodes: tuple[Node, ...] = (Node("n1", 17001), Node("n2", 17002))
    partitions: tuple[Partition, ...] = field(
        default=(
            Partition("cpu", "60", default=True),
            Partition("long", "1-00:00:00"),
            Partition("debug", "5", max_nodes=1),
        )
    )

    @property
    def slurm_conf(self) -> Path:
        return slurm_conf_in(self.state_dir)

    @property
    def slurmdbd_conf(self) -> Path:
        # slurmdbd finds its config beside slurm.conf (slurm-notes.md).
        return self.state_dir / "etc" / "slurmdbd.conf"

    @property
    def munge_dir(self) -> Path:
        return self.state_dir / "munge"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.sock"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def env(self) -> dict[str, str]:
        """What every Slurm client and daemon needs in its environment."""
        return {"SLURM_CONF": str(self.slurm_conf)}


def render_slurm_conf(spec: ClusterSpec) -> str:
    """slurm.conf for the spec: accounting through slurmdbd, memory enforced, fast scheduling."""
    d = spec.state_dir
    lines = [
        f"ClusterName={spec.cluster_name}",
        f"SlurmctldHost={spec.hostname}(127.0.0.1)",
        f"SlurmctldPort={spec.ctld_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={spec.munge_socket}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        # Nodes may declare more CPUs than the machine has (CPUs=4 on 2 cores ran 8 at once).
        "SlurmdParameters=config_overrides",
        "KillWait=2",
        "MinJobAge=300",
        "MaxArraySize=1001",
        "MaxJobCount=50000",
        "SelectType=select/cons_tres",
        # Memory as a consumable plus OverMemoryKill: the only way to enforce --mem
        # without cgroups (slurm-notes.md); an element over its limit is killed.
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=100",
        "JobAcctGatherType=jobacct_gather/linux",
        "JobAcctGatherFrequency=1",
        "JobAcctGatherParams=OverMemoryKill",
        # Refuse impossible requests at sbatch time instead of pending forever.
        "EnforcePartLimits=ALL",
        # sched_interval=1: a 1000-element array runs ~3x faster than with the default.
        "SchedulerParameters=sched_interval=1,bf_interval=1",
        "DependencyParameters=kill_invalid_depend",
        # An epilog, as production clusters have: slurmd then reports every job's end with the
        # epilog-complete message, which runs slurmctld's scheduler at once. Without one it skips
        # the message when the job's steps are gone already (a race), and queued jobs wait for the
        # next pass: a level's hand-over relies on that message (bridge.handover).
        "Epilog=/bin/true",
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=127.0.0.1",
        f"AccountingStoragePort={spec.dbd_port}",
        # For slurmdbd this "password" is the munge socket to use (slurm.conf(5)).
        f"AccountingStoragePass={spec.munge_socket}",
        # Associations, their limits and QOS are enforced as on a university cluster: a job
        # needs an account, and MaxSubmitJobs refuses submissions (the bridge's back-pressure).
        "AccountingStorageEnforce=associations,limits,qos",
        "JobCompType=jobcomp/none",
        f"StateSaveLocation={d / 'state'}",
        f"SlurmdSpoolDir={d / 'spool'}/%n",
        f"SlurmctldPidFile={spec.run_dir / 'slurmctld.daemon.pid'}",
        f"SlurmdPidFile={spec.run_dir / 'slurmd.%n.daemon.pid'}",
        f"SlurmctldLogFile={spec.log_dir / 'slurmctld.log'}",
        f"SlurmdLogFile={spec.log_dir / 'slurmd.%n.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
    ]
    for node in spec.nodes:
        lines.append(
            f"NodeName={node.name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={node.port} "
            f"CPUs={node.cpus} RealMemory={node.memory_mb} State=UNKNOWN"
        )
    node_names = ",".join(n.name for n in spec.nodes)
    for part in spec.partitions:
        extra = f" MaxNodes={part.max_nodes}" if part.max_nodes else ""
        lines.append(
            f"PartitionName={part.name} Nodes={node_names} MaxTime={part.max_time} "
            f"Default={'YES' if part.default else 'NO'} State=UP{extra}"
        )
    return "\n".join(lines) + "\n"


def render_slurmdbd_conf(spec: ClusterSpec) -> str:
    """slurmdbd.conf: accounting in MariaDB, the database named after the state directory."""
    lines = [
        "AuthType=auth/munge",
        f"AuthInfo=socket={spec.munge_socket}",
        "DbdHost=localhost",
        "DbdAddr=127.0.0.1",
        f"DbdPort={spec.dbd_port}",
        "SlurmUser=root",
        f"LogFile={spec.log_dir / 'slurmdbd.log'}",
        f"PidFile={spec.run_dir / 'slurmdbd.daemon.pid'}",
        "StorageType=accounting_storage/mysql",
        f"StorageHost={spec.mysql_host}",
        f"StoragePort={spec.mysql_port}",
        f"StorageUser={spec.mysql_user}",
        f"StorageLoc={spec.database}",
    ]
    if spec.mysql_password:
        lines.append(f"StoragePass={spec.mysql_password}")
    return "\n".join(lines) + "\n"
