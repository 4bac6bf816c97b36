"""Which cluster job a run belongs to: SLURM job and step, Kubernetes pod and namespace.

Recorded with every run (``meta["cluster"]``) so its energy can be matched with what the
cluster's own telemetry says about the same job: SLURM's accounting (``sacct``), a DCGM
exporter or Kepler on Kubernetes (``greenai reconcile``, :mod:`greenai.distributed.reconcile`).

Where each fact comes from:

* SLURM: the variables it exports to every task (``SLURM_JOB_ID``, ``SLURM_STEP_ID``,
  ``SLURM_CLUSTER_NAME``...; :mod:`greenai.distributed.slurm`).
* Kubernetes: the pod's name, namespace, UID and node from the downward API, which a pod
  spec maps to environment variables of its choosing; the names read are the ones in the
  Kubernetes docs' examples and common charts (``POD_NAME`` or ``MY_POD_NAME`` or
  ``K8S_POD_NAME``, and likewise ``..._NAMESPACE``, ``..._UID``, ``NODE_NAME``). Inside a
  pod without them: the service account's namespace file, ``HOSTNAME`` (a pod's host name is
  its name), and the pod UID and container id from the cgroup path
  (``/kubepods/burstable/pod<uid>/<container>`` with the cgroupfs driver,
  ``kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope`` with
  systemd's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from greenai.distributed.slurm import slurm_info

__all__ = ["ClusterIdentity", "cluster_identity", "kubepods_ids"]

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
PROC_CGROUP = "/proc/self/cgroup"

_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)
_CONTAINER = re.compile(r"(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$")


@dataclass(frozen=True)
class ClusterIdentity:
    """The cluster job this process runs in; every field None where it does not apply.

    Attributes:
        scheduler: ``slurm``, ``kubernetes``, or None outside both.
        slurm_job_id, slurm_step_id, slurm_cluster, slurm_job_name: From SLURM's variables.
        k8s_namespace, k8s_pod, k8s_pod_uid, k8s_node: The pod (downward API, else the
            service account file, ``HOSTNAME`` and the cgroup path).
        container_id: The container's id from the cgroup path (64 hex digits).
        cgroup: This process's cgroup v2 path (``0::/...`` in ``/proc/self/cgroup``).
    """

    scheduler: str | None = None
    slurm_job_id: str | None = None
    slurm_step_id: str | None = None
    slurm_cluster: str | None = None
    slurm_job_name: str | None = None
    k8s_namespace: str | None = None
    k8s_pod: str | None = None
    k8s_pod_uid: str | None = None
    k8s_node: str | None = None
    container_id: str | None = None
    cgroup: str | None = None

    def to_dict(self) -> dict[str, str]:
        """The fields that are set (JSON-ready), for ``meta["cluster"]``."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterIdentity:
        """Rebuild from :meth:`to_dict` (unknown keys are ignored)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: str(v) for k, v in data.items() if k in known and v is not None})

    def __bool__(self) -> bool:
        return self.scheduler is not None or self.container_id is not None


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def kubepods_ids(cgroup_text: str) -> tuple[str | None, str | None]:
    """The pod UID and container id in a ``/proc/<pid>/cgroup`` text (None where absent).

    Reads both cgroup drivers' layouts; systemd's writes the UID with ``_`` for ``-``.
    """
    pod = container = None
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        if "kubepods" not in path:
            continue
        match = _POD_UID.search(path)
        if match is not None:
            pod = match.group(1).replace("_", "-")
        for part in reversed(path.split("/")):
            cmatch = _CONTAINER.search(part)
            if cmatch is not None:
                container = cmatch.group(1)
                break
        if pod is not None:
            break
    return pod, container


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def cluster_identity(
    environ: Mapping[str, str] | None = None,
    *,
    proc_cgroup: str = PROC_CGROUP,
    namespace_file: str = SERVICE_ACCOUNT_NAMESPACE,
) -> ClusterIdentity:
    """This process's cluster job (an empty :class:`ClusterIdentity` outside any).

    Never raises: a file that cannot be read leaves its fields unset.

    Args:
        environ: The environment (``os.environ`` by default).
        proc_cgroup: Where this process's cgroups are read (injectable for tests).
        namespace_file: The service account's namespace file (injectable for tests).
    """
    env = os.environ if environ is None else environ
    slurm = slurm_info(env)
    cgroup_text = _read(proc_cgroup) or ""
    cgroup_v2 = next(
        (line[3:] for line in cgroup_text.splitlines() if line.startswith("0::")), None
    )
    pod_uid, container = kubepods_ids(cgroup_text)
    in_k8s = bool(env.get("KUBERNETES_SERVICE_HOST")) or pod_uid is not None
    namespace = _first(env, "POD_NAMESPACE", "MY_POD_NAMESPACE", "K8S_NAMESPACE")
    pod = _first(env, "POD_NAME", "MY_POD_NAME", "K8S_POD_NAME")
    if in_k8s:
        namespace = namespace or _read(namespace_file)
        pod = pod or _first(env, "HOSTNAME")
    in_k8s = in_k8s or pod is not None
    scheduler = "slurm" if slurm is not None else "kubernetes" if in_k8s else None
    return ClusterIdentity(
        scheduler=scheduler,
        slurm_job_id=slurm.job_id if slurm else None,
        slurm_step_id=slurm.step_id if slurm else None,
        slurm_cluster=slurm.cluster if slurm else None,
        slurm_job_name=slurm.job_name if slurm else None,
        k8s_namespace=namespace if in_k8s else None,
        k8s_pod=pod if in_k8s else None,
        k8s_pod_uid=(_first(env, "POD_UID", "MY_POD_UID", "K8S_POD_UID") or pod_uid)
        if in_k8s
        else None,
        k8s_node=_first(env, "NODE_NAME", "MY_NODE_NAME", "K8S_NODE_NAME") if in_k8s else None,
        container_id=container,
        cgroup=cgroup_v2 if (scheduler or container) else None,
    )
