"""The local cluster's configuration files, rendered from one spec."""

from __future__ import annotations

from pathlib import Path

from bridge.devcluster.cluster import load_spec
from bridge.devcluster.conf import ClusterSpec, render_slurm_conf, render_slurmdbd_conf


def _settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and " " not in line)


def test_slurm_conf_points_everything_into_the_state_dir(tmp_path: Path):
    spec = ClusterSpec(state_dir=tmp_path, hostname="box", database="acct_x")
    conf = _settings(render_slurm_conf(spec))
    assert conf["SlurmctldHost"] == "box(127.0.0.1)"
    assert conf["AuthInfo"] == f"socket={tmp_path / 'munge' / 'munge.sock'}"
    # slurmctld authenticates to slurmdbd through this setting, not AuthInfo.
    assert conf["AccountingStoragePass"] == str(tmp_path / "munge" / "munge.sock")
    for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldPidFile", "SlurmctldLogFile"):
        assert conf[key].startswith(str(tmp_path)), key
    assert conf["EnforcePartLimits"] == "ALL"
    assert conf["JobAcctGatherParams"] == "OverMemoryKill"


def test_two_nodes_on_their_own_ports_and_three_partitions_with_different_limits(tmp_path: Path):
    text = render_slurm_conf(ClusterSpec(state_dir=tmp_path, hostname="box"))
    nodes = [line for line in text.splitlines() if line.startswith("NodeName=")]
    parts = {line.split()[0]: line for line in text.splitlines() if line.startswith("PartitionName=")}
    assert [n.split()[0] for n in nodes] == ["NodeName=n1", "NodeName=n2"]
    assert len({n.split("Port=")[1].split()[0] for n in nodes}) == 2
    assert "Default=YES" in parts["PartitionName=cpu"]
    limits = {name: line.split("MaxTime=")[1].split()[0] for name, line in parts.items()}
    assert limits == {"PartitionName=cpu": "60", "PartitionName=long": "1-00:00:00", "PartitionName=debug": "5"}


def test_slurmdbd_conf_uses_the_spec_database_and_omits_an_empty_password(tmp_path: Path):
    spec = ClusterSpec(state_dir=tmp_path, hostname="box", database="acct_y", mysql_port=3307)
    conf = _settings(render_slurmdbd_conf(spec))
    assert conf["StorageLoc"] == "acct_y" and conf["StoragePort"] == "3307"
    assert "StoragePass" not in conf
    with_pass = _settings(render_slurmdbd_conf(ClusterSpec(state_dir=tmp_path, hostname="b", mysql_password="pw")))
    assert with_pass["StoragePass"] == "pw"


def test_a_new_state_dir_gets_a_new_accounting_database_and_keeps_it(tmp_path: Path):
    first = load_spec(tmp_path / "a")
    other = load_spec(tmp_path / "b")
    assert first.database != other.database
    (tmp_path / "a" / "etc").mkdir(parents=True)
    (tmp_path / "a" / "etc" / "database").write_text(first.database + "\n")
    assert load_spec(tmp_path / "a").database == first.database


def test_state_dir_comes_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BEAT_BRIDGE_CLUSTER_DIR", str(tmp_path / "c"))
    assert load_spec().state_dir == (tmp_path / "c").resolve()
