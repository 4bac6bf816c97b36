"""Names made from a job's name are accepted by each backend (issue 28)."""

from __future__ import annotations

import re

import pytest

from greenai.integrations.names import mlflow_run_name, wandb_artifact_name

HOSTILE = ["a/b", "with space", "two\nlines", "x" * 300, "ünïcode:名前", "", "../..", "a" * 119]


@pytest.mark.parametrize("job", HOSTILE)
def test_wandb_accepts_every_artifact_name(job: str) -> None:
    wandb = pytest.importorskip("wandb")
    name = wandb_artifact_name(job)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", name), name
    wandb.Artifact(name, type="greenai-report")  # W&B's own check raises on a bad name


def test_distinct_jobs_keep_distinct_names() -> None:
    names = {wandb_artifact_name(j) for j in ["a/b", "a b", "a\nb", "a-b"]}
    assert len(names) == 4
    assert wandb_artifact_name("train") == "greenai-train"


@pytest.mark.parametrize("job", HOSTILE)
def test_mlflow_run_names_are_one_line_and_short(job: str) -> None:
    name = mlflow_run_name(job)
    assert "\n" not in name and len(name) <= 250
