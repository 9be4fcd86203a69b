"""Which numeric precision a run trains in, checked against the hardware it runs on.

``auto`` picks bf16 autocast where the hardware has native bf16 (a CUDA GPU that supports it, or a
CPU whose flags show ``avx512_bf16`` or ``amx_bf16``) and fp32 otherwise. An explicit choice the
device cannot run well is refused in one sentence: fp16 mixed precision needs a CUDA GPU, and bf16
on a CPU without bf16 instructions is emulated (slower than fp32). Under autocast the frozen
teacher's forward runs in the same precision as the student's (both happen inside the Trainer's
``compute_loss``).

:func:`resolve_precision` is the only place a requested precision becomes a concrete one (with the
reason), and :func:`autocast` the only context that applies one outside the Trainer.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from polydistill.errors import PolydistillError

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _cuda() -> tuple[bool, bool]:
    import torch

    available = torch.cuda.is_available()
    return available, available and torch.cuda.is_bf16_supported()


_FLAG_NAMES = {"avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX BF16"}


@dataclass(frozen=True)
class ResolvedPrecision:
    """A concrete precision for this machine: ``name`` (``fp32 | bf16 | fp16``), the ``device`` it runs on
    (``cuda | cpu``) and the ``reason`` in words (``"bf16: the CPU has AVX-512 BF16"``)."""

    name: str
    device: str
    reason: str

    @property
    def dtype(self):
        """The autocast dtype (``torch.bfloat16`` / ``torch.float16``), or None for fp32 (no autocast)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)


def resolve_precision(requested: str, *, cuda: tuple[bool, bool] | None = None,
                      flags: frozenset[str] | None = None) -> ResolvedPrecision:
    """``auto | fp32 | bf16 | fp16`` → the precision to use on this device, with the reason: the one place a
    requested precision becomes a concrete one (training, the teacher-cache key, compress's step timing).

    ``cuda`` = (GPU available, GPU supports bf16) and ``flags`` = CPU flags are read from the machine
    unless given (tests simulate other hardware with them)."""
    has_cuda, cuda_bf16 = cuda if cuda is not None else _cuda()
    present = flags if flags is not None else cpu_flags()
    cpu_bf16 = [_FLAG_NAMES[flag] for flag in CPU_BF16_FLAGS if flag in present]
    device = "cuda" if has_cuda else "cpu"
    native = (cuda_bf16 if has_cuda else bool(cpu_bf16))
    why_bf16 = "the GPU supports bf16" if has_cuda else f"the CPU has {' and '.join(cpu_bf16)}"
    if requested == "auto":
        if native:
            return ResolvedPrecision("bf16", device, f"bf16: {why_bf16}")
        return ResolvedPrecision("fp32", device, "fp32: " + ("this GPU has no bf16" if has_cuda
                                                             else "no native bf16 on this CPU"))
    if requested == "fp16" and not has_cuda:
        raise PolydistillError("--precision fp16 needs a CUDA GPU; on a CPU use --precision auto, bf16 (where "
                               "the CPU has bf16 instructions) or fp32.")
    if requested == "bf16" and has_cuda and not cuda_bf16:
        raise PolydistillError("This GPU does not support bf16; use --precision fp16 or fp32.")
    if requested == "bf16" and not has_cuda and not cpu_bf16:
        raise PolydistillError(f"This CPU has no bf16 instructions ({' / '.join(CPU_BF16_FLAGS)}), so bf16 would be "
                               "emulated and slower than fp32; use --precision fp32 (or auto).")
    if requested not in ("fp32", "bf16", "fp16"):
        raise PolydistillError(f"Unknown precision {requested!r}; choose auto, fp32, bf16 or fp16.")
    return ResolvedPrecision(requested, device, f"{requested}: requested" + (f" ({why_bf16})" if requested == "bf16"
                                                                            else ""))


def autocast(precision: ResolvedPrecision) -> AbstractContextManager[Any]:
    """The one context that applies a resolved precision outside the Trainer: ``torch.autocast`` on its
    device in bf16 / fp16, nothing for fp32. (Inside the training core, accelerate applies the same
    precision: ``training_arguments`` turns it into the Trainer's ``fp16`` / ``bf16``, and the teacher's
    forward runs under ``accelerator.autocast()`` like the student's.)"""
    dtype = precision.dtype
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(precision.device, dtype=dtype)
