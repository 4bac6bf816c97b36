"""What SLURM tells a task about its job: job id, nodes, tasks per node.

SLURM exports these to every task it starts (``srun``, ``sbatch``); greenai records them on
the run so a job's energy can be matched to the scheduler's accounting. Compressed forms are
expanded: ``node[01-03,07]`` is four nodes, and ``2(x3),1`` is 2, 2, 2 and 1 tasks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from greenai.errors import ConfigError
from greenai.jobrecord import SlurmInfo

__all__ = ["SlurmInfo", "expand_hostlist", "expand_tasks_per_node", "slurm_info"]

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_REPEAT = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


def slurm_info(environ: Mapping[str, str] | None = None) -> SlurmInfo | None:
    """The SLURM job of this process, or None outside SLURM (no ``SLURM_JOB_ID``).

    A malformed node or task list is kept out (with the rest still recorded) rather than
    raised: SLURM metadata must never stop the user's job.
    """
    env = os.environ if environ is None else environ
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job_id:
        return None
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    try:
        nodes = tuple(expand_hostlist(nodelist)) if nodelist else ()
    except ConfigError:
        nodes = ()
    try:
        tasks = tuple(expand_tasks_per_node(env.get("SLURM_TASKS_PER_NODE", "")))
    except ConfigError:
        tasks = ()
    return SlurmInfo(
        job_id=job_id,
        job_name=env.get("SLURM_JOB_NAME"),
        cluster=env.get("SLURM_CLUSTER_NAME"),
        step_id=env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID"),
        nodes=nodes,
        tasks_per_node=tasks,
        ntasks=_int(env.get("SLURM_NTASKS") or env.get("SLURM_NPROCS")),
        procid=_int(env.get("SLURM_PROCID")),
        localid=_int(env.get("SLURM_LOCALID")),
        nodeid=_int(env.get("SLURM_NODEID")),
    )


def expand_hostlist(text: str) -> list[str]:
    """Expand a SLURM host list: ``"gpu[01-03,07],cpu1"`` → gpu01, gpu02, gpu03, gpu07, cpu1.

    Zero padding is kept (``[08-10]`` gives 08, 09, 10) and several bracket groups in one
    name expand as a product (``r[1-2]n[1-2]``).

    Raises:
        ConfigError: Unbalanced brackets or a bad range.
    """
    hosts: list[str] = []
    for item in _split_top(text.strip()):
        if item:
            hosts.extend(_expand_one(item))
    return hosts


def expand_tasks_per_node(text: str) -> list[int]:
    """Expand ``SLURM_TASKS_PER_NODE``: ``"2(x3),1"`` → [2, 2, 2, 1]; ``""`` → [].

    Raises:
        ConfigError: An entry that is not ``N`` or ``N(xM)``.
    """
    out: list[int] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        match = _REPEAT.match(item)
        if match is None:
            raise ConfigError(f"cannot read SLURM_TASKS_PER_NODE entry {item!r} (want N or N(xM))")
        out.extend([int(match.group(1))] * int(match.group(2) or 1))
    return out


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced ']' in SLURM host list {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ConfigError(f"unbalanced '[' in SLURM host list {text!r}")
    parts.append(text[start:])
    return parts


def _expand_one(item: str) -> list[str]:
    open_at = item.find("[")
    if open_at < 0:
        return [item]
    close_at = item.find("]", open_at)
    if close_at < 0:
        raise ConfigError(f"unbalanced '[' in SLURM host name {item!r}")
    prefix, body, rest = item[:open_at], item[open_at + 1 : close_at], item[close_at + 1 :]
    values: list[str] = []
    for part in body.split(","):
        match = _RANGE.match(part.strip())
        if match is None:
            raise ConfigError(f"bad range {part!r} in SLURM host name {item!r}")
        lo, hi = match.group(1), match.group(2) or match.group(1)
        if int(hi) < int(lo):
            raise ConfigError(f"descending range {part!r} in SLURM host name {item!r}")
        width = len(lo)
        values.extend(f"{k:0{width}d}" for k in range(int(lo), int(hi) + 1))
    return [prefix + v + tail for v in values for tail in _expand_one(rest)]


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None
