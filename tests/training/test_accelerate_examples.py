"""The accelerate configs shipped under examples/accelerate parse as accelerate configs and launch what they say."""

from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

import growthcurve

EXAMPLES = Path(growthcurve.__file__).parent / "examples" / "accelerate"
EXPECTED = {
    "cpu_2proc.yaml": (DistributedType.MULTI_GPU, 2, 1),
    "ddp_4gpu.yaml": (DistributedType.MULTI_GPU, 4, 1),
    "ddp_2nodes.yaml": (DistributedType.MULTI_GPU, 8, 2),
    "fsdp.yaml": (DistributedType.FSDP, 4, 1),
    "deepspeed_zero2.yaml": (DistributedType.DEEPSPEED, 4, 1),
}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_parses_with_accelerate(name: str) -> None:
    cfg = load_config_from_file(str(EXAMPLES / name))
    assert (cfg.distributed_type, cfg.num_processes, cfg.num_machines) == EXPECTED[name]
    # MULTI_GPU (not MULTI_CPU, not use_cpu) is what makes `accelerate launch` start several processes on CPU
    assert cfg.use_cpu is False
