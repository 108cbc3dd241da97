"""The CPUs this process may use: its CPU affinity, capped by the cgroup v2 CPU quota when there is one.

os.cpu_count() is the host's CPUs; in a Kubernetes pod the pod's CPU limit is the cgroup quota
(/sys/fs/cgroup/cpu.max, "QUOTA PERIOD" in microseconds, or "max PERIOD" for none) and a CPU set is
the affinity. Thread pools sized by the host would oversubscribe the pod (and each thread holds its
own decode buffers). A quota of 1.5 CPUs gives 2 threads (rounded up; at least 1).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def affinity_cpus() -> int:
    """The CPUs in this process's affinity mask (os.cpu_count() where the platform has none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1  # pragma: no cover - macOS, Windows


def quota_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs of the cgroup v2 quota in `cpu_max`, rounded up; None without a file, a quota or a valid one."""
    try:
        fields = cpu_max.read_text().split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        log.warning("%s: unexpected content %r; the CPU quota is ignored", cpu_max, " ".join(fields))
        return None
    if quota <= 0 or period <= 0:
        log.warning("%s: quota %d / period %d is not positive; ignored", cpu_max, quota, period)
        return None
    return max(1, math.ceil(quota / period))


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """min(the affinity's CPUs, the cgroup v2 quota's CPUs rounded up), at least 1."""
    quota = quota_cpus(cpu_max)
    affinity = affinity_cpus()
    return affinity if quota is None else min(affinity, quota)
