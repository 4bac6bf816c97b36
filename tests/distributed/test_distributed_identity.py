from __future__ import annotations

import inspect
import socket
from pathlib import Path

import pytest

from greenai.devices.attribution import Attributed
from greenai.devices.base import Device
from greenai.devices.cpu_model import CpuModel
from greenai.devices.memory_model import MemoryModel
from greenai.distributed import (
    RankInfo,
    device_id,
    host_id,
    own_devices,
    ownership,
    rank_info,
    slurm_info,
)
from greenai.distributed.slurm import expand_hostlist, expand_tasks_per_node
from greenai.errors import ConfigError
from greenai.testing import FakeGPU

SLURM = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "pretrain",
    "SLURM_JOB_NODELIST": "gpu[08-10],cpu1",
    "SLURM_TASKS_PER_NODE": "4(x3),1",
    "SLURM_NTASKS": "13",
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
}


def test_hostlists_expand_like_slurm() -> None:
    assert expand_hostlist("gpu[08-10,12],cpu1") == ["gpu08", "gpu09", "gpu10", "gpu12", "cpu1"]
    assert expand_hostlist("r[1-2]n[1-2]") == ["r1n1", "r1n2", "r2n1", "r2n2"]
    assert expand_hostlist("single") == ["single"]
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    for bad in ("gpu[1-2", "gpu1-2]", "gpu[3-1]", "gpu[a]"):
        with pytest.raises(ConfigError):
            expand_hostlist(bad)
    with pytest.raises(ConfigError, match="N\\(xM\\)"):
        expand_tasks_per_node("2x3")


def test_slurm_info_reads_the_job_and_survives_garbage() -> None:
    info = slurm_info(SLURM)
    assert info is not None
    assert info.job_id == "4242" and info.job_name == "pretrain"
    assert info.nodes == ("gpu08", "gpu09", "gpu10", "cpu1")
    assert info.tasks_per_node == (4, 4, 4, 1) and info.ntasks == 13
    assert (info.procid, info.localid, info.nodeid) == (5, 1, 1)
    assert slurm_info({}) is None
    broken = slurm_info({**SLURM, "SLURM_JOB_NODELIST": "gpu[1", "SLURM_TASKS_PER_NODE": "x"})
    assert broken is not None and broken.nodes == () and broken.tasks_per_node == ()


def test_rank_info_from_torchrun_and_slurm_variables() -> None:
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    info = rank_info({**torchrun, "GREENAI_HOST_ID": "nodeB"})
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (3, 8, 1, 4)
    assert info.host == "nodeB" and info.slurm is None and info.backend is None
    srun = rank_info(SLURM)
    assert (srun.rank, srun.world_size, srun.local_rank, srun.local_world_size) == (5, 13, 1, 4)
    assert srun.slurm is not None and srun.slurm.job_id == "4242"
    assert host_id({}, boot_id_path="/nonexistent") == socket.gethostname()


def test_host_id_tells_apart_two_machines_with_one_host_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("0f1e2d3c-aaaa-bbbb-cccc-000000000001\n")
    b.write_text("9a8b7c6d-aaaa-bbbb-cccc-000000000002\n")
    ida, idb = host_id({}, boot_id_path=str(a)), host_id({}, boot_id_path=str(b))
    assert ida == f"{socket.gethostname()}@0f1e2d3c" and ida != idb
    assert host_id({"GREENAI_HOST_ID": "n1"}, boot_id_path=str(a)) == "n1"


def test_without_local_rank_the_rank_modulo_ranks_per_host_stands_in() -> None:
    spawned = rank_info({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"})
    assert (spawned.local_rank, spawned.local_world_size) == (1, 4)
    unknown = rank_info({"RANK": "5", "WORLD_SIZE": "8"})
    assert (unknown.local_rank, unknown.local_world_size) == (0, 1)


def test_rank_info_prefers_the_process_group() -> None:
    class Group:
        def get_rank(self) -> int:
            return 7

        def get_world_size(self) -> int:
            return 16

        def get_backend(self) -> str:
            return "nccl"

    info = rank_info({"RANK": "0", "LOCAL_RANK": "3"}, dist=Group())
    assert (info.rank, info.world_size, info.local_rank, info.backend) == (7, 16, 3, "nccl")


def _rank(local: int, local_world: int) -> RankInfo:
    return RankInfo(rank=local, world_size=local_world, local_rank=local,
                    local_world_size=local_world, host="h")  # fmt: skip


def test_each_rank_owns_its_gpu_and_local_rank_zero_the_host() -> None:
    gpus = [FakeGPU(f"gpu{i}", uuid=f"GPU-{i}") for i in range(4)]
    cpu, mem = CpuModel(), MemoryModel()
    found = [*gpus, cpu, mem]
    assert own_devices(found, _rank(0, 4)) == [gpus[0], cpu, mem]
    assert own_devices(found, _rank(2, 4)) == [gpus[2]]
    assert own_devices(found, _rank(0, 1)) == found  # one rank on the host: everything
    assert own_devices([gpus[3], cpu], _rank(1, 4)) == [gpus[3]]  # CUDA_VISIBLE_DEVICES=3
    assert own_devices(found, _rank(5, 8)) == []  # more ranks than GPUs


def test_device_identity_is_the_uuid_or_kind_and_name() -> None:
    assert device_id(FakeGPU("gpu0", uuid="GPU-abc")) == "GPU-abc"
    assert device_id(FakeGPU("gpu0")) == "gpu:gpu0"
    assert device_id(MemoryModel()) == "dram:memory-model"


def test_device_identity_reads_the_declared_uuid() -> None:
    """``uuid`` is part of the Device interface (None unless the library gives one), and
    identity reads it there: a device need not carry an undeclared attribute to be told apart.
    """
    assert Device.uuid is None and CpuModel().uuid is None
    assert "uuid" in Device.__doc__  # documented with the other attributes
    source = inspect.getsource(ownership)
    assert "getattr(" not in source  # no guessing at attributes the interface does not declare
    gpu = FakeGPU("gpu0", uuid="GPU-abc")
    shared = Attributed(gpu, lambda: 0.5, pid=42, how="test")
    assert shared.uuid is None  # the share is not the GPU: its identity names the process
    assert device_id(shared) == "GPU-abc@pid42"
    assert device_id(Attributed(CpuModel(), lambda: 1.0, pid=7, how="t")).endswith(
        ":cpu-model@pid7"
    )
