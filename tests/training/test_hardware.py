"""Precision, CPU family and OpenMP policy choices per machine, with the probes mocked (no machine needed)."""

from __future__ import annotations

import pytest
import torch

from growthcurve import cpuinfo
from growthcurve.training import hardware

AMX = {f: True for f in cpuinfo.FLAGS}
AVX2 = {f: f in ("avx2", "fma") for f in cpuinfo.FLAGS}
AVX512_BF16 = {f: f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni") for f in cpuinfo.FLAGS}


@pytest.mark.parametrize(
    ("flags", "family"),
    [(AMX, "amx"), (AVX512_BF16, "avx512_bf16"), (AVX2, "avx2"), ({f: False for f in cpuinfo.FLAGS}, "other")],
)
def test_cpu_family(flags: dict[str, bool], family: str) -> None:
    assert cpuinfo.cpu_family(flags) == family


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"), [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")]
)
def test_auto_precision_follows_the_cpu_probes(
    monkeypatch: pytest.MonkeyPatch, amx: bool, avx512_bf16: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    cpu = torch.device("cpu")
    assert hardware.resolve_precision("auto", cpu) == expected
    assert hardware.resolve_precision("fp32", cpu) == "fp32"  # an explicit choice is kept
    assert hardware.resolve_precision("bf16", cpu) == "bf16"


def test_a_probe_that_raises_means_no_fast_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> bool:
        raise RuntimeError("no cpuinfo")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", boom, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", boom, raising=False)
    assert hardware.resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_openmp_policy_passive_only_on_a_busy_machine() -> None:
    env: dict[str, str] = {}
    assert cpuinfo.choose_openmp_policy(env, load=0.3, cores=2) == "DEFAULT" and env == {}
    assert cpuinfo.choose_openmp_policy(env, load=1.5, cores=2) == "PASSIVE"
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "active"}
    assert cpuinfo.choose_openmp_policy(mine, load=8.0, cores=2) == "ACTIVE"  # the user's choice stays
    assert mine == {"OMP_WAIT_POLICY": "active"}


def test_compute_report_names_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: AVX2)
    rep = hardware.compute_report(torch.device("cpu"), "fp32")
    assert rep["cpu_family"] == "avx2" and rep["cpu_flags"] == ["avx2", "fma"]
    assert rep["precision"] == "fp32" and "fp32" in str(rep["kernels"])
    assert rep["threads"] == torch.get_num_threads() and rep["torch"] == torch.__version__
    monkeypatch.setattr(hardware, "cpu_flags", lambda: AMX)
    assert hardware.compute_report(torch.device("cpu"), "bf16")["kernels"] == "oneDNN bf16 on AMX tiles"
