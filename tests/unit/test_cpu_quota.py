"""data/cpu_quota.py: the CPUs this process may use (affinity and the cgroup v2 quota), for decode threads.

The affinity is the real one of this process; the cgroup file is a real temporary file in cpu.max's
format ("QUOTA PERIOD" or "max PERIOD")."""

import os

import pytest

from spherereid.data.cpu_quota import usable_cpus


def _cpu_max(tmp_path, text: str):
    path = tmp_path / "cpu.max"
    path.write_text(text)
    return path


def test_the_cgroup_quota_caps_the_affinity_and_the_affinity_caps_the_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(_cpu_max(tmp_path, "max 100000\n")) == affinity  # no quota: the affinity
    assert usable_cpus(tmp_path / "absent") == affinity  # no cgroup v2 file: the affinity
    assert usable_cpus(_cpu_max(tmp_path, "100000 100000\n")) == 1  # one CPU of quota
    assert usable_cpus(_cpu_max(tmp_path, "50000 100000\n")) == 1  # half a CPU: still one thread
    assert usable_cpus(_cpu_max(tmp_path, "150000 100000\n")) == min(2, affinity)  # 1.5 CPUs: two
    assert usable_cpus(_cpu_max(tmp_path, f"{(affinity + 7) * 100000} 100000\n")) == affinity


def test_the_quota_wins_over_more_cpus_in_the_affinity(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    if affinity < 2:
        pytest.skip("needs an affinity of at least 2 CPUs to tell the quota from the affinity")
    assert usable_cpus(_cpu_max(tmp_path, f"{(affinity - 1) * 100000} 100000")) == affinity - 1


@pytest.mark.parametrize("text", ["", "garbage", "100000", "0 100000", "100000 0", "-1 100000"])
def test_an_unreadable_cpu_max_falls_back_to_the_affinity(tmp_path, text):
    assert usable_cpus(_cpu_max(tmp_path, text)) == len(os.sched_getaffinity(0))
