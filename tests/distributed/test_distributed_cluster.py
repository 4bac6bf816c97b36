from __future__ import annotations

from pathlib import Path

import greenai
from greenai.distributed.cluster import ClusterIdentity, cluster_identity, kubepods_ids
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU

POD_UID = "0f7d2a4e-1b2c-4d5e-8f90-123456789abc"
CONTAINER = "a" * 60 + "beef"


def _cgroup(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cgroup"
    path.write_text(text)
    return str(path)


def test_outside_any_cluster_nothing_is_recorded(tmp_path: Path) -> None:
    ident = cluster_identity({}, proc_cgroup=_cgroup(tmp_path, "0::/user.slice\n"))
    assert not ident and ident.to_dict() == {}


def test_slurm_job_and_step_from_its_variables(tmp_path: Path) -> None:
    env = {
        "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "3", "SLURM_CLUSTER_NAME": "hpc",
        "SLURM_JOB_NAME": "train", "SLURM_PROCID": "1",
    }  # fmt: skip
    ident = cluster_identity(env, proc_cgroup=_cgroup(tmp_path, "0::/system.slice/slurmd\n"))
    assert ident.to_dict() == {
        "scheduler": "slurm", "slurm_job_id": "4242", "slurm_step_id": "3",
        "slurm_cluster": "hpc", "slurm_job_name": "train", "cgroup": "/system.slice/slurmd",
    }  # fmt: skip


def test_kubernetes_pod_from_the_downward_api(tmp_path: Path) -> None:
    env = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "trainer-0",
        "POD_NAMESPACE": "ml", "NODE_NAME": "gpu-node-3", "HOSTNAME": "ignored",
    }  # fmt: skip
    cgroup = f"0::/kubepods/burstable/pod{POD_UID}/{CONTAINER}\n"
    ident = cluster_identity(env, proc_cgroup=_cgroup(tmp_path, cgroup))
    assert ident.scheduler == "kubernetes"
    assert (ident.k8s_pod, ident.k8s_namespace, ident.k8s_node) == ("trainer-0", "ml", "gpu-node-3")
    assert ident.k8s_pod_uid == POD_UID and ident.container_id == CONTAINER


def test_kubernetes_without_downward_api_reads_hostname_and_service_account(
    tmp_path: Path,
) -> None:
    ns = tmp_path / "namespace"
    ns.write_text("research\n")
    uid = POD_UID.replace("-", "_")
    cgroup = (
        "0::/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{uid}.slice/cri-containerd-{CONTAINER}.scope\n"
    )
    ident = cluster_identity(
        {"HOSTNAME": "job-abc12"}, proc_cgroup=_cgroup(tmp_path, cgroup), namespace_file=str(ns)
    )
    assert ident.scheduler == "kubernetes"
    assert (ident.k8s_pod, ident.k8s_namespace) == ("job-abc12", "research")
    assert ident.k8s_pod_uid == POD_UID and ident.container_id == CONTAINER


def test_cgroup_v1_lines_are_read_too() -> None:
    text = f"12:memory:/kubepods/besteffort/pod{POD_UID}/{CONTAINER}\n0::/\n"
    assert kubepods_ids(text) == (POD_UID, CONTAINER)
    assert kubepods_ids("0::/docker/abc\n") == (None, None)


def test_unreadable_cgroup_file_never_raises(tmp_path: Path) -> None:
    ident = cluster_identity({"SLURM_JOB_ID": "1"}, proc_cgroup=str(tmp_path / "missing"))
    assert ident.slurm_job_id == "1" and ident.cgroup is None
    assert ClusterIdentity.from_dict(ident.to_dict()) == ident


def test_each_run_records_its_cluster_identity(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    clock = FakeClock()
    store = tmp_path / "runs.db"
    with greenai.track("t", devices=[FakeGPU(clock=clock)], clock=clock, store=store) as job:
        clock.advance(1.0)
    assert job.meta["cluster"]["slurm_job_id"] == "777"
    with RunStore(store) as runs:
        assert runs.get("latest").meta["cluster"]["slurm_step_id"] == "0"


def test_the_users_own_cluster_meta_wins(monkeypatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    clock = FakeClock()
    meta = {"cluster": {"scheduler": "mine"}}
    with greenai.track("t", devices=[FakeGPU(clock=clock)], clock=clock, meta=meta) as job:
        clock.advance(1.0)
    assert job.meta["cluster"] == {"scheduler": "mine"}
