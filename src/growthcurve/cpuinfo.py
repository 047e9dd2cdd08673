"""What CPU this is (model, the vector extensions that decide the fast path) and the OpenMP wait policy,
without importing torch: the policy must be in the environment before torch loads its OpenMP runtime."""

from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping

# The flags that decide which kernels are fast: AMX tiles and AVX512-BF16 run bf16 matmuls natively; on
# AVX2-only CPUs bf16 is emulated (slower than fp32).
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> dict[str, bool]:
    """Which of `FLAGS` the CPU reports (all False where /proc/cpuinfo is unreadable)."""
    present: set[str] = set()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            break
    return {f: f in present for f in FLAGS}


def cpu_family(flags: dict[str, bool] | None = None) -> str:
    """``amx`` | ``avx512_bf16`` | ``avx512`` | ``avx2`` | ``other``: the class of CPU a speed figure belongs to
    (benchmark results files are kept per family so machines never overwrite each other's figures)."""
    f = cpu_flags() if flags is None else flags
    if f.get("amx_tile") and f.get("amx_bf16"):
        return "amx"
    if f.get("avx512_bf16"):
        return "avx512_bf16"
    if f.get("avx512f"):
        return "avx512"
    if f.get("avx2"):
        return "avx2"
    return "other"


def usable_cores() -> int:
    """CPUs this process may run on (affinity mask, e.g. a container's cpuset), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_openmp_policy(
    env: MutableMapping[str, str] | None = None, load: float | None = None, cores: int | None = None
) -> str:
    """Set ``OMP_WAIT_POLICY`` for this process unless the user did; returns the policy in force.

    OpenMP workers spin at every barrier by default. On a machine whose cores are already busy, a spinning
    worker holds a core its partner needs, and each of the thousands of small parallel regions of a training
    step waits a scheduler slice: measured on 2 shared cores (load ~8), MiniLM training ran 0.2 steps/s with
    the default policy and 2 steps/s with PASSIVE. On an idle machine spinning saves a wake-up per region, so
    PASSIVE is chosen only when the 1-minute load average is at least half the usable cores.
    """
    if env is None:
        env = os.environ
    if env.get("OMP_WAIT_POLICY"):
        return env["OMP_WAIT_POLICY"].upper()
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    if load >= 0.5 * cores:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        return "PASSIVE"
    return "DEFAULT"
