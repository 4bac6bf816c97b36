"""Job names as each logging backend accepts them.

A job's name is the user's free text (slashes, spaces, newlines, any length); each backend
has its own rules for the names greenai makes from it. Names that had to change keep a
short hash of the original, so two different jobs never share one.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["mlflow_run_name", "wandb_artifact_name"]

WANDB_ARTIFACT_MAX = 128
"""W&B refuses artifact names longer than this (and any outside ``[A-Za-z0-9._-]``)."""

MLFLOW_RUN_NAME_MAX = 250
"""MLflow refuses run names longer than this."""


def _tag(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def wandb_artifact_name(job: str, prefix: str = "greenai-") -> str:
    """``prefix`` + ``job`` with only letters, digits, ``.``, ``_``, ``-``; at most 128 chars.

    Example:
        >>> wandb_artifact_name("train")
        'greenai-train'
        >>> wandb_artifact_name("a/b c")
        'greenai-a-b-c-9f597a63'
    """
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", job).strip("-.") or "job"
    if clean == job and len(prefix + clean) <= WANDB_ARTIFACT_MAX:
        return prefix + clean
    keep = WANDB_ARTIFACT_MAX - len(prefix) - 9
    return f"{prefix}{clean[:keep]}-{_tag(job)}"


def mlflow_run_name(job: str) -> str:
    """``job`` on one line and at most 250 characters (a hash marks a shortened one)."""
    clean = " ".join(job.split())
    if clean == job and len(clean) <= MLFLOW_RUN_NAME_MAX:
        return clean
    return f"{clean[: MLFLOW_RUN_NAME_MAX - 9]}-{_tag(job)}"
