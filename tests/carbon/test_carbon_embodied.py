from __future__ import annotations

import json

import pytest

from greenai.carbon.embodied import (
    FACTORS,
    EmbodiedFactor,
    embodied_co2e,
    gpu_job_embodied_co2e,
)
from greenai.errors import ConfigError

LIFE_H = 6 * 365.25 * 24  # six years in hours


def test_every_built_in_figure_is_cited_and_says_if_it_is_a_class_estimate() -> None:
    assert FACTORS
    for key, factor in FACTORS.items():
        assert factor.key == key and factor.kg_co2e > 0
        assert "20" in factor.source and len(factor.source) > 40  # a dated publication
        assert isinstance(factor.class_estimate, bool)
    # The GPU figure is an estimate for a family, not a PCF of one product: it must say so.
    assert FACTORS["datacenter-gpu"].class_estimate


def test_four_gpus_for_two_hours_with_their_share_of_a_server() -> None:
    figures = gpu_job_embodied_co2e(4, 2 * 3600.0)
    gpu_kg = 150.0 * 4 * 2 / LIFE_H  # 8 GPU-hours of a 150 kg GPU over six years
    host_kg = 2500.0 * (4 / 8) * 2 / LIFE_H  # half a server for two hours
    assert [s.factor.key for s in figures.shares] == ["datacenter-gpu", "gpu-server-host"]
    assert [s.device_hours for s in figures.shares] == pytest.approx([8.0, 1.0])
    assert figures.shares[0].co2e_kg == pytest.approx(gpu_kg)
    assert figures.co2e_kg == pytest.approx(gpu_kg + host_kg)
    assert figures.class_estimate
    assert "not added" in figures.basis


def test_lower_utilisation_charges_jobs_for_idle_time_too() -> None:
    busy = embodied_co2e([("datacenter-gpu", 10.0)])
    half = embodied_co2e([("datacenter-gpu", 10.0)], utilisation=0.5)
    short_life = embodied_co2e([("datacenter-gpu", 10.0)], service_life_years=3.0)
    assert half.co2e_kg == pytest.approx(2 * busy.co2e_kg)
    assert short_life.co2e_kg == pytest.approx(2 * busy.co2e_kg)


def test_a_users_own_pcf_and_repeated_factors_are_merged() -> None:
    pcf = EmbodiedFactor(
        key="my-board",
        description="an 8-GPU board, vendor PCF",
        kg_co2e=1000.0,
        source="vendor PCF summary, 2025",
        class_estimate=False,
    )
    figures = embodied_co2e([(pcf, 1.0), (pcf, 2.0)], service_life_years=5.0)
    assert len(figures.shares) == 1 and figures.shares[0].device_hours == 3.0
    assert figures.co2e_kg == pytest.approx(1000.0 * 3 / (5 * 365.25 * 24))
    assert not figures.class_estimate
    json.dumps(figures.to_dict())


def test_no_server_and_no_gpus() -> None:
    assert gpu_job_embodied_co2e(2, 3600.0, server=None).shares[-1].factor.key == "datacenter-gpu"
    assert gpu_job_embodied_co2e(0, 3600.0).co2e_kg == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: embodied_co2e([("tpu", 1.0)]), "unknown embodied factor 'tpu'"),
        (lambda: embodied_co2e([("datacenter-gpu", -1.0)]), "device_hours"),
        (lambda: embodied_co2e([], service_life_years=0), "service_life_years"),
        (lambda: embodied_co2e([], utilisation=1.5), "utilisation"),
        (lambda: gpu_job_embodied_co2e(-1, 1.0), "gpus must be"),
        (lambda: gpu_job_embodied_co2e(1, 1.0, gpus_per_server=0), "gpus_per_server"),
        (lambda: gpu_job_embodied_co2e(1, float("nan")), "duration_s"),
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]
