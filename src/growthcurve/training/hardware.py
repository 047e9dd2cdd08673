"""Device and precision choices: bf16 where the hardware has fast bf16 matmuls (AMX/AVX512-BF16, CUDA)."""

from __future__ import annotations

import resource
import sys

import torch

from growthcurve.cpuinfo import cpu_family, cpu_flags, cpu_model


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX tiles or AVX512-BF16, where oneDNN runs bf16 matmuls natively."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except RuntimeError:
            continue
    return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` → bf16 on CUDA with bf16 support or a bf16-capable CPU, else fp32."""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def compute_report(device: torch.device, precision: str) -> dict[str, object]:
    """What ran the job, for metrics.json and the run report: CPU model, family and flags, threads, the
    OpenMP wait policy, the precision and the kernels it implies (ATen's vector level, oneDNN/AMX)."""
    import os

    flags = cpu_flags()
    family = "cuda" if device.type == "cuda" else cpu_family(flags)
    capability = torch.backends.cpu.get_cpu_capability()
    if device.type == "cuda":
        kernels = f"cuBLAS {precision}"
    elif precision == "bf16":
        kernels = "oneDNN bf16 on AMX tiles" if family == "amx" else f"oneDNN bf16 ({capability})"
    else:
        kernels = f"fp32 GEMM ({capability})"
    return {
        "cpu_model": cpu_model(),
        "cpu_family": family,
        "cpu_flags": [f for f, on in flags.items() if on],
        "device": str(device),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "DEFAULT").upper(),
        "torch": torch.__version__,
        "precision": precision,
        "kernels": kernels,
    }
