"""Standard benchmark workloads, suites and machine identity (``greenai bench``).

Example:
    >>> from greenai.bench import get_suite, run_suite
    >>> doc = run_suite(get_suite("smoke"), only=["gemm-fp32"])  # doctest: +SKIP
"""

from greenai.bench.machine import machine_info
from greenai.bench.suite import SUITES, Suite, get_suite, resolve_device, run_suite, run_workload
from greenai.bench.workloads import Prepared, Workload

__all__ = [
    "SUITES",
    "Prepared",
    "Suite",
    "Workload",
    "get_suite",
    "machine_info",
    "resolve_device",
    "run_suite",
    "run_workload",
]
