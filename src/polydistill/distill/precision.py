"""Which numeric precision a run trains in, checked against the hardware it runs on.

``auto`` picks bf16 autocast where the hardware has native bf16 (a CUDA GPU that supports it, or a
CPU whose flags show ``avx512_bf16`` or ``amx_bf16``) and fp32 otherwise. An explicit choice the
device cannot run well is refused in one sentence: fp16 mixed precision needs a CUDA GPU, and bf16
on a CPU without bf16 instructions is emulated (slower than fp32). Under autocast the frozen
teacher's forward runs in the same precision as the student's (both happen inside the Trainer's
``compute_loss``).
"""

from __future__ import annotations

from functools import lru_cache

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


def resolve_precision(requested: str, *, cuda: tuple[bool, bool] | None = None,
                      flags: frozenset[str] | None = None) -> str:
    """``auto | fp32 | bf16 | fp16`` → the precision to use (``fp32 | bf16 | fp16``) on this device.

    ``cuda`` = (GPU available, GPU supports bf16) and ``flags`` = CPU flags are read from the machine
    unless given (tests simulate other hardware with them)."""
    has_cuda, cuda_bf16 = cuda if cuda is not None else _cuda()
    cpu_bf16 = any(flag in (flags if flags is not None else cpu_flags()) for flag in CPU_BF16_FLAGS)
    if requested == "auto":
        return "bf16" if (cuda_bf16 if has_cuda else cpu_bf16) else "fp32"
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
    return requested
