from __future__ import annotations

from pathlib import Path

import pytest

from greenai.host import cpu_model, host_facts


def test_host_facts_read_the_cpu_model_and_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Example CPU @ 2.00GHz\n")
    assert cpu_model(info) == "Example CPU @ 2.00GHz"
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "6")
    facts = host_facts(info)
    assert facts["cpu_model"] == "Example CPU @ 2.00GHz" and facts["cpu_count"] == 6
    assert facts["ram_total_size"] > 0 and facts["python_version"].count(".") == 2


def test_an_unreadable_cpuinfo_leaves_the_model_out(tmp_path: Path) -> None:
    facts = host_facts(tmp_path / "missing")
    assert facts.get("cpu_model", "") != "cpu-model"  # absent or platform's, never invented
