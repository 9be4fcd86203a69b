"""The machine a model is measured and deployed on: CPU model, vendor, the instruction-set flags that
decide which runtime is fastest, threads, and the GPU when torch sees one.

Which runtime serves a small encoder fastest depends on the machine (issue #36): on an AMD EPYC with
AVX2 only, dynamic-int8 ONNX Runtime wins; on an Intel Xeon with AMX, bf16 (torch or OpenVINO) is ~3×
faster for batched throughput. Every bench, export and compress record therefore carries a
:class:`MachineProfile`, and every speed table is labelled with :attr:`MachineProfile.label`
("AMD EPYC, AVX2, 2 threads", "Intel Xeon, AMX, 2 threads").

:func:`parse_cpuinfo` is a pure function of ``/proc/cpuinfo`` text, so the profile of any machine can
be tested from canned text; :func:`machine_profile` reads this machine.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# x86 extensions that decide int8 / bf16 speed: AVX-512 VNNI and AVX-VNNI (8-bit dot products), AVX-512
# BF16 (bf16 dot products), AMX (tile matrix multiply in bf16 / int8).
CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
             "amx_tile")
_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon", "CentaurHauls": "Centaur"}
_ARM_IMPLEMENTERS = {"0x41": "Arm", "0x61": "Apple", "0xc0": "Ampere", "0x48": "HiSilicon", "0x51": "Qualcomm",
                     "0x4e": "NVIDIA"}
_NOISE = re.compile(r"\((?:R|TM|tm|r)\)|®|™")


@dataclass(frozen=True)
class CpuInfo:
    """What /proc/cpuinfo says about the first processor."""

    model: str  # "Intel(R) Xeon(R) Platinum 8480+", "AMD EPYC 7763 64-Core Processor"
    vendor: str  # Intel, AMD, Arm, ... or the raw vendor id
    flags: frozenset[str] = field(default_factory=frozenset)


def parse_cpuinfo(text: str) -> CpuInfo:
    """Model name, vendor and flags of the first processor in ``/proc/cpuinfo`` text (x86 ``flags`` or
    Arm ``Features``); empty fields for text that names none."""
    model = vendor = ""
    flags: frozenset[str] = frozenset()
    for line in text.splitlines():
        if not line.strip():
            if model or flags:  # the first processor's block is complete
                break
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key == "vendor_id" and not vendor:
            vendor = _VENDORS.get(value, value)
        elif key == "cpu implementer" and not vendor:
            vendor = _ARM_IMPLEMENTERS.get(value.lower(), value)
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    if not vendor and model:
        vendor = next((name for name in ("Intel", "AMD") if name.lower() in model.lower()), "")
    return CpuInfo(model=model, vendor=vendor, flags=flags)


def short_cpu_name(model: str, vendor: str = "") -> str:
    """The family of a CPU model name: "Intel Xeon", "AMD EPYC", "Intel Core", "AMD Ryzen"."""
    words = [w for w in _NOISE.sub(" ", model).split() if w.lower() not in ("cpu", "processor", "@")]
    family = []
    for word in words:
        if any(ch.isdigit() for ch in word) or word.lower().endswith("-core"):
            break
        family.append(word)
        if len(family) == 2:
            break
    name = " ".join(family) or vendor or platform.machine() or "unknown CPU"
    if vendor and not name.lower().startswith(vendor.lower()):
        name = f"{vendor} {name}"
    return name


def isa_label(flags: frozenset[str] | set[str] | dict[str, bool]) -> str:
    """The best matrix-multiply extension a CPU has, in the words a speed table uses."""
    have = {k for k, v in flags.items() if v} if isinstance(flags, dict) else set(flags)
    if have & {"amx_bf16", "amx_int8", "amx_tile"}:
        return "AMX"
    if "avx512_bf16" in have:
        return "AVX-512 BF16"
    if "avx512_vnni" in have:
        return "AVX-512 VNNI"
    if "avx512f" in have:
        return "AVX-512"
    if "avx_vnni" in have:
        return "AVX-VNNI"
    if "avx2" in have:
        return "AVX2"
    if have & {"sve", "sve2"}:
        return "SVE"
    if have & {"asimd", "neon"}:
        return "NEON"
    return "no AVX2"


@dataclass(frozen=True)
class MachineProfile:
    """CPU, its relevant flags, the threads in use and the GPU (None without CUDA)."""

    cpu: str
    vendor: str
    flags: dict[str, bool]
    threads: int
    cpu_count: int | None = None
    gpu: dict[str, Any] | None = None  # {"name": ..., "capability": "9.0", "count": 1}

    @property
    def isa(self) -> str:
        return isa_label(self.flags)

    @property
    def native_bf16(self) -> bool:
        """Whether the CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX); without it torch emulates
        bf16 and is several times slower than fp32 (6× on an AVX2 EPYC, 6×192 encoder, b32 L128)."""
        return bool(self.flags.get("avx512_bf16") or self.flags.get("amx_bf16"))

    @property
    def int8_dot(self) -> bool:
        """Whether the CPU has 8-bit dot-product instructions (VNNI or AMX int8)."""
        return bool(self.flags.get("avx512_vnni") or self.flags.get("avx_vnni") or self.flags.get("amx_int8"))

    @property
    def label(self) -> str:
        """"Intel Xeon, AMX, 2 threads" (+ "; GPU NVIDIA H100 80GB HBM3 (sm 9.0)" when one is seen)."""
        text = f"{short_cpu_name(self.cpu, self.vendor)}, {self.isa}, {self.threads} thread{'s' * (self.threads != 1)}"
        if self.gpu:
            text += f"; GPU {self.gpu.get('name')} (sm {self.gpu.get('capability')})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "isa": self.isa, "native_bf16": self.native_bf16, "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MachineProfile:
        return cls(cpu=data.get("cpu", ""), vendor=data.get("vendor", ""), flags=dict(data.get("flags") or {}),
                   threads=int(data.get("threads") or 1), cpu_count=data.get("cpu_count"), gpu=data.get("gpu"))


def gpu_info() -> dict[str, Any] | None:
    """The first CUDA device torch sees: name, compute capability ("9.0"), device count; else None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return {"name": torch.cuda.get_device_name(0), "capability": f"{major}.{minor}",
            "count": torch.cuda.device_count()}


def read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def profile_from_cpuinfo(text: str, threads: int, cpu_count: int | None = None,
                         gpu: dict[str, Any] | None = None) -> MachineProfile:
    """The profile of a machine whose /proc/cpuinfo is ``text`` (pure; tests pass canned text)."""
    info = parse_cpuinfo(text)
    model = info.model or platform.processor() or platform.machine()
    return MachineProfile(cpu=model, vendor=info.vendor, flags={flag: flag in info.flags for flag in CPU_FLAGS},
                          threads=threads, cpu_count=cpu_count, gpu=gpu)


def machine_profile(threads: int | None = None) -> MachineProfile:
    """This machine: /proc/cpuinfo, ``threads`` (default: torch's intra-op thread count) and the GPU."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return profile_from_cpuinfo(read_cpuinfo(), threads, os.cpu_count(), gpu_info())
