"""The machine profile (issue #36): /proc/cpuinfo parsed from canned text for the machine classes the
runtime choice depends on, the GPU through a monkeypatched torch.cuda, the short label speed tables
carry, and the profile in bench and export records."""

from __future__ import annotations

import pytest

from polydistill.export.machine import (
    CPU_FLAGS,
    MachineProfile,
    gpu_info,
    isa_label,
    machine_profile,
    parse_cpuinfo,
    profile_from_cpuinfo,
    short_cpu_name,
)

_COMMON = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht "
           "syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 "
           "pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm "
           "3dnowprefetch fsgsbase bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni "
           "xsaveopt xsavec xgetbv1 xsaves")


def _cpuinfo(vendor: str, model: str, flags: str, processors: int = 2) -> str:
    block = (f"processor\t: {{i}}\nvendor_id\t: {vendor}\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: {model}\n"
             f"stepping\t: 8\ncpu MHz\t\t: 2000.000\ncache size\t: 107520 KB\nflags\t\t: {flags}\n"
             "bogomips\t: 4000.00\n\n")
    return "".join(block.replace("{i}", str(i)) for i in range(processors))


# Sapphire Rapids (Xeon Platinum 8480+): AVX-512 with VNNI and BF16, AMX tiles in bf16 and int8.
SAPPHIRE_RAPIDS = _cpuinfo("GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+", _COMMON + (
    " avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi umip pku ospke waitpkg "
    "avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid movdiri movdir64b "
    "serialize tsxldtrk amx_bf16 avx512_fp16 amx_tile amx_int8 arch_capabilities avx_vnni"))
# Zen 4 (EPYC 9654): AVX-512 with VNNI and BF16, no AMX.
ZEN4_EPYC = _cpuinfo("AuthenticAMD", "AMD EPYC 9654 96-Core Processor", _COMMON + (
    " avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 clzero wbnoinvd avx512vbmi umip pku "
    "avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid fsrm"))
# Zen 3 EPYC (the development machine of the EPYC numbers): AVX2 only.
ZEN3_EPYC = _cpuinfo("AuthenticAMD", "AMD EPYC 7763 64-Core Processor", _COMMON + " clzero wbnoinvd vaes vpclmulqdq")
GRAVITON = ("processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
            "fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit "
            "uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng\nCPU implementer\t: 0x41\n"
            "CPU architecture: 8\nCPU part\t: 0xd40\n\n")


def test_sapphire_rapids_is_an_amx_xeon():
    info = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert info.vendor == "Intel" and info.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx2"} <= info.flags
    profile = profile_from_cpuinfo(SAPPHIRE_RAPIDS, threads=2, cpu_count=8)
    assert profile.isa == "AMX" and profile.native_bf16 and profile.int8_dot
    assert profile.label == "Intel Xeon, AMX, 2 threads"
    assert all(profile.flags[f] for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                                           "amx_tile"))


def test_zen4_epyc_has_avx512_bf16_and_vnni_but_no_amx():
    profile = profile_from_cpuinfo(ZEN4_EPYC, threads=4)
    assert profile.vendor == "AMD"
    assert profile.flags["avx512f"] and profile.flags["avx512_vnni"] and profile.flags["avx512_bf16"]
    assert not profile.flags["amx_bf16"] and not profile.flags["amx_int8"] and not profile.flags["amx_tile"]
    assert profile.isa == "AVX-512 BF16" and profile.native_bf16 and profile.int8_dot
    assert profile.label == "AMD EPYC, AVX-512 BF16, 4 threads"


def test_avx2_only_cpu_has_no_native_bf16():
    profile = profile_from_cpuinfo(ZEN3_EPYC, threads=1)
    assert profile.flags["avx2"] and not any(profile.flags[f] for f in CPU_FLAGS if f != "avx2")
    assert profile.isa == "AVX2" and not profile.native_bf16 and not profile.int8_dot
    assert profile.label == "AMD EPYC, AVX2, 1 thread"


def test_arm_and_empty_cpuinfo():
    info = parse_cpuinfo(GRAVITON)
    assert info.vendor == "Arm" and "sve" in info.flags
    assert isa_label(info.flags) == "SVE"
    empty = parse_cpuinfo("")
    assert empty.model == "" and empty.flags == frozenset()
    assert isa_label(empty.flags) == "no AVX2"


@pytest.mark.parametrize("model, vendor, short", [
    ("Intel(R) Xeon(R) Platinum 8480+", "Intel", "Intel Xeon"),
    ("Intel(R) Core(TM) i7-12700K", "Intel", "Intel Core"),
    ("AMD EPYC 7763 64-Core Processor", "AMD", "AMD EPYC"),
    ("AMD Ryzen 9 7950X 16-Core Processor", "AMD", "AMD Ryzen"),
    ("AMD EPYC", "AMD", "AMD EPYC"),
    ("", "Arm", "Arm"),
])
def test_short_cpu_names(model, vendor, short):
    assert short_cpu_name(model, vendor) == short


def test_cuda_gpu_from_monkeypatched_torch(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=0: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    gpu = gpu_info()
    assert gpu == {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "count": 1}
    profile = machine_profile(threads=2)
    assert profile.gpu == gpu
    assert profile.label.endswith("; GPU NVIDIA H100 80GB HBM3 (sm 9.0)")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_info() is None and machine_profile(threads=2).gpu is None


def test_profile_round_trips_and_this_machine_reads():
    profile = profile_from_cpuinfo(SAPPHIRE_RAPIDS, threads=2, gpu={"name": "X", "capability": "8.0", "count": 1})
    data = profile.to_dict()
    assert data["label"] == profile.label and data["isa"] == "AMX" and data["native_bf16"] is True
    assert MachineProfile.from_dict(data) == profile
    here = machine_profile(threads=3)
    assert here.threads == 3 and set(here.flags) == set(CPU_FLAGS) and here.label.endswith("3 threads")


def test_bench_record_has_the_profile(tmp_path):
    from polydistill.bench.measure import machine_info

    info = machine_info()
    assert info["profile"]["label"] == machine_profile().label
    assert set(info["profile"]["flags"]) == set(CPU_FLAGS)
