"""Opt-in regional ``torch.compile`` of the repeated encoder layers (``train.compile=regions``).

Measured on a quiet 2-core Sapphire Rapids (docs/finetune.md, benchmarks/train_throughput.py --compile):
the first step compiles for ~58 s cold, ~9 s with a warm cache, and steady steps of MiniLM-L6 are at most
~10% faster, so this is never the default. Each layer of the repeated stack (``encoder.layer``) is compiled
in place with ``dynamic=True``: one graph serves every sequence length and batch size (a static compile with
lengths padded to multiples of 16 compiles one graph per (batch, length) pair), the layers share it, and
inductor's FX graph cache (``TORCHINDUCTOR_CACHE_DIR``, by default one folder per CPU ISA, see
``isa_cache_dir``) keeps the kernels for the next run.

In place rather than accelerate's ``compile_regions``: that returns a copy whose layers become
``OptimizedModule`` wrappers (other module names) and also compiles every non-repeated leaf (embeddings,
pooler, head), which adds graphs for no measured gain; ``nn.Module.compile`` keeps the module tree, the
state-dict keys, checkpoints and ``save_pretrained`` exactly as in the eager run.

A compile that fails on the first step (no C++ compiler, an operator inductor cannot lower) reverts to eager
with one ``warning:`` line; later recompiles fall back per frame (dynamo's ``suppress_errors``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def repeated_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The blocks of every outermost ``ModuleList`` of two or more same-class composite modules (BERT's
    ``encoder.layer``), found with accelerate's own test for a repeated block. Leaf modules do not count:
    TextCNN's list of ``Conv1d`` of three widths is not a stack of layers, and compiling a lone conv gains nothing."""
    from accelerate.utils.other import is_repeated_blocks

    found: list[torch.nn.Module] = []
    inside: set[int] = set()  # modules under a stack already taken: its blocks' own lists are not regions
    for module in model.modules():
        if id(module) in inside:
            continue
        if not isinstance(module, torch.nn.ModuleList):  # is_repeated_blocks' own first check, stated for mypy
            continue
        if is_repeated_blocks(module) and len(module) >= 2 and next(module[0].children(), None) is not None:
            found.extend(module)
            inside.update(id(m) for m in module.modules())
    return found


def inductor_cache_dir() -> str:
    """Where inductor keeps compiled kernels (``TORCHINDUCTOR_CACHE_DIR`` or its default)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return str(cache_dir())


def isa_cache_dir() -> str:
    """Point inductor's default cache at one folder per CPU vector ISA (``.../torchinductor_<user>/cpu-avx512``)
    and return the cache folder; a folder the user set in ``TORCHINDUCTOR_CACHE_DIR`` is left alone.

    Why: torch 2.13's cache served kernels built for one ISA to a process whose ATen ran another (AVX-512
    kernels under ``ATEN_CPU_CAPABILITY=avx2``, and back): NaN losses one way, a heap-corruption abort the
    other, reproduced here and gone with one folder each. Machines of several CPU families sharing a home
    folder, or a capability override, must not meet in one cache."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    default = os.path.abspath(default_cache_dir())
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if env is None or os.path.abspath(env) == default:  # inductor writes its default into the variable itself
        isa = torch.backends.cpu.get_cpu_capability().lower()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(default, f"cpu-{isa}")
    return inductor_cache_dir()


def _missing_compiler() -> str | None:
    """Why inductor cannot build CPU kernels here (no C++ compiler), or None. Checked up front so the usual
    failure costs no traced graph."""
    if not torch.cuda.is_available():
        from torch._inductor import cpp_builder

        try:
            cxx = cpp_builder.get_cpp_compiler()
        except Exception as exc:  # inductor raises its own error types for a missing compiler
            return f"no C++ compiler for inductor ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        if shutil.which(cxx) is None and not os.path.isfile(cxx):
            return f"no C++ compiler for inductor ('{cxx}' not found; set CXX)"
    return None


def _reason(exc: BaseException) -> str:
    """One line naming the error and its root cause (dynamo wraps a backend's error in BackendCompilerFailed,
    whose own first line is only "backend=... raised:")."""
    root = getattr(exc, "inner_exception", None) or exc.__cause__ or exc
    lines = str(root).strip().splitlines()
    what = type(exc).__name__ + (f" / {type(root).__name__}" if root is not exc else "")
    return f"{what}: {lines[0][:200]}" if lines else what


@dataclass
class RegionCompile:
    """The compiled layers of one fit and what happened to them (``report`` goes into metrics.json)."""

    layers: list[torch.nn.Module]
    warn: Callable[[str], None]
    first_step_s: float | None = None
    fallback: str | None = None
    pending: bool = True  # the first forward/backward (where the compile happens) has not run yet
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.layers) and self.fallback is None

    def first_step(self, step: Callable[[], T], clear_grads: Callable[[], None]) -> T:
        """Run the fit's first forward/backward (which compiles), timed; on failure revert to eager, clear
        the partial gradients and run it again eagerly."""
        self.pending = False
        t0 = time.perf_counter()
        try:
            out = step()
        except Exception as exc:  # any compile error: the eager path below raises a real input error again
            self.revert(_reason(exc))
            clear_grads()
            return step()
        self.first_step_s = time.perf_counter() - t0
        # From now on a recompile (a shape the dynamic graph does not cover) runs that frame eagerly instead
        # of stopping the run; set only after the first step so its failure gives one warning line, not a
        # logged traceback.
        torch._dynamo.config.suppress_errors = True
        return out

    def revert(self, reason: str) -> None:
        """Back to eager for the rest of the fit, with one warning line."""
        for layer in self.layers:
            # nn.Module.compile stores the compiled call here; None is its uncompiled state
            layer._compiled_call_impl = None
        self.fallback = reason
        self.warn(f"train.compile=regions failed ({reason}); training eagerly")

    @contextmanager
    def eager(self) -> Iterator[None]:
        """Run eagerly inside the block (validation: an eval-mode graph would compile for one dev pass)."""
        with torch.compiler.set_stance("force_eager"):
            yield

    def report(self) -> dict[str, Any]:
        """For metrics.json's train block."""
        return {
            "mode": "regions" if self.active else "off",
            "requested": "regions",
            "compiled_layers": len(self.layers) if self.active else 0,
            "dynamic": True,
            "first_step_s": self.first_step_s if self.active else None,
            "fallback": self.fallback,
            "cache_dir": inductor_cache_dir(),
        }


def compile_regions(
    model: torch.nn.Module, mode: str, warn: Callable[[str], None], *, backend: str | Callable[..., Any] = "inductor"
) -> RegionCompile | None:
    """Compile ``model``'s repeated layers in place when ``mode`` is ``regions``; None (eager, untouched) for
    ``off``. A model without repeated layers (BiLSTM, TextCNN) or a machine without a C++ compiler trains
    eagerly with one warning line. ``backend``: torch.compile's (tests pass one that fails)."""
    if mode == "off":
        return None
    layers = repeated_layers(model)
    reason = None if layers else f"{type(model).__name__} has no repeated layers to compile"
    reason = reason or (_missing_compiler() if backend == "inductor" else None)
    if reason is not None:
        warn(f"train.compile=regions: {reason}; training eagerly")
        return RegionCompile([], warn, fallback=reason, pending=False)
    isa_cache_dir()
    for layer in layers:
        layer.compile(dynamic=True, backend=backend)
    return RegionCompile(layers, warn)


def compile_report(compiled: RegionCompile | None) -> dict[str, Any]:
    """The ``compile`` entry of metrics.json's train block, also for an eager run."""
    return compiled.report() if compiled is not None else {"mode": "off"}
