"""The runtime choice of ``export --runtime auto`` as pure functions (issue #36): which candidates a machine
measures, the fidelity gate, and the rule — the fastest candidate that passes the gate; one that fails is
never chosen, even when fastest. Timings are canned: the AMX Xeon row and the EPYC row of the issue."""

from __future__ import annotations

import pytest

from polydistill.bench.select import GateResult, choose_runtime, judge, parse_serve
from polydistill.errors import PolydistillError
from polydistill.export.machine import profile_from_cpuinfo
from polydistill.export.runtimes import RUNTIMES, parse_runtimes, plan_candidates
from test_machine import SAPPHIRE_RAPIDS, ZEN3_EPYC, ZEN4_EPYC

AMX = profile_from_cpuinfo(SAPPHIRE_RAPIDS, threads=2)
AVX2 = profile_from_cpuinfo(ZEN3_EPYC, threads=2)
ZEN4 = profile_from_cpuinfo(ZEN4_EPYC, threads=2)
PASS = GateResult(passed=True, reason="")

# Student 6×192, 2 threads, median seconds (issue #36 and docs/performance.md).
XEON_TIMES = {  # bf16 wins batched throughput, int8 ONNX wins batch-1 latency
    "torch-fp32": {"b32/L128": 0.600, "b1/L32": 0.0060},
    "torch-bf16": {"b32/L128": 0.045, "b1/L32": 0.0039},
    "onnx-int8": {"b32/L128": 0.140, "b1/L32": 0.0015},
    "openvino": {"b32/L128": 0.046, "b1/L32": 0.0039},
}
EPYC_TIMES = {  # no bf16 hardware: int8 ONNX wins everything
    "torch-fp32": {"b32/L128": 1.170, "b1/L32": 0.0170},
    "onnx-fp32": {"b32/L128": 0.700, "b1/L32": 0.0060},
    "onnx-int8": {"b32/L128": 0.250, "b1/L32": 0.0030},
    "openvino": {"b32/L128": 0.650, "b1/L32": 0.0070},
}


def _all_pass(timings):
    return {name: PASS for name in timings}


def test_fastest_passing_candidate_is_chosen():
    choice = choose_runtime(XEON_TIMES, _all_pass(XEON_TIMES))
    assert choice.runtime == "torch-bf16"  # geometric mean over both workloads beats openvino by a hair
    assert choice.fastest == {"b32/L128": "torch-bf16", "b1/L32": "onnx-int8"}
    assert choice.scores["torch-bf16"] == min(choice.scores.values())
    assert set(choice.rejected) == set(XEON_TIMES) - {"torch-bf16"}
    assert all(why.startswith("slower") for why in choice.rejected.values())


def test_one_workload_decides_alone():
    latency = {name: {"b1/L32": t["b1/L32"]} for name, t in XEON_TIMES.items()}
    assert choose_runtime(latency, _all_pass(latency)).runtime == "onnx-int8"
    throughput = {name: {"b32/L128": t["b32/L128"]} for name, t in XEON_TIMES.items()}
    assert choose_runtime(throughput, _all_pass(throughput)).runtime == "torch-bf16"


def test_a_candidate_failing_the_gate_is_never_chosen_even_if_fastest():
    gates = _all_pass(XEON_TIMES)
    gates["torch-bf16"] = judge(agreement=0.97)
    choice = choose_runtime(XEON_TIMES, gates)
    assert choice.runtime == "openvino"
    assert "fidelity gate" in choice.rejected["torch-bf16"] and "97.00 %" in choice.rejected["torch-bf16"]
    # every faster one failing: the slowest that passes is chosen
    gates = {name: False for name in XEON_TIMES} | {"torch-fp32": True}
    assert choose_runtime(XEON_TIMES, gates).runtime == "torch-fp32"
    # a candidate that was never gated is not chosen either
    assert choose_runtime(XEON_TIMES, {"onnx-int8": PASS}).runtime == "onnx-int8"


def test_no_candidate_passing_is_one_sentence():
    with pytest.raises(PolydistillError, match="No candidate runtime passed the fidelity gate"):
        choose_runtime(XEON_TIMES, {name: False for name in XEON_TIMES})


def test_untimed_workload_excludes_a_candidate_and_ties_prefer_the_plainer_runtime():
    timings = {"onnx-int8": {"b1/L32": 0.001}, "torch-fp32": {"b1/L32": 0.002, "b32/L128": 0.5}}
    choice = choose_runtime(timings, _all_pass(timings))
    assert choice.runtime == "torch-fp32" and "every workload" in choice.rejected["onnx-int8"]
    tied = {"openvino": {"b1/L32": 0.001}, "onnx-int8": {"b1/L32": 0.001}}
    assert choose_runtime(tied, _all_pass(tied)).runtime == "onnx-int8"  # earlier in RUNTIMES


def test_cpu_without_bf16_measures_no_bf16_and_still_chooses_int8_onnx():
    """The EPYC (AVX2) profile: bf16 is not a default candidate, and int8 ONNX wins where it is fastest."""
    candidates, skipped = plan_candidates(AVX2, calibration=False, is_installed=lambda package: True)
    assert "torch-bf16" not in candidates and "bf16" in skipped["torch-bf16"]
    assert {"torch-fp32", "onnx-fp32", "onnx-int8", "openvino"} <= set(candidates)
    assert "onnx-int8-static" in skipped and "openvino-int8" in skipped  # no calibration data
    timings = {name: EPYC_TIMES[name] for name in candidates if name in EPYC_TIMES}
    assert choose_runtime(timings, _all_pass(timings)).runtime == "onnx-int8"
    # named explicitly, bf16 is measured even there
    named, _ = plan_candidates(AVX2, calibration=False, requested=["torch-fp32", "torch-bf16"],
                               is_installed=lambda package: True)
    assert named == ["torch-fp32", "torch-bf16"]


@pytest.mark.parametrize("profile", [AMX, ZEN4])
def test_bf16_cpus_measure_every_runtime(profile):
    candidates, skipped = plan_candidates(profile, calibration=True, is_installed=lambda package: True)
    assert candidates == list(RUNTIMES) and skipped == {}
    without_openvino, skipped = plan_candidates(profile, calibration=True, is_installed=lambda p: p != "openvino")
    assert "openvino" not in without_openvino and "polydistill[openvino]" in skipped["openvino"]


def test_gate_rule():
    assert judge(agreement=0.99).passed and not judge(agreement=0.9899).passed
    ref = {"en": 80.0, "sw": 60.0}
    assert judge(agreement=1.0, f1_reference=ref, f1_candidate={"en": 80.4, "sw": 59.6}).passed
    failed = judge(agreement=1.0, f1_reference=ref, f1_candidate={"en": 80.0, "sw": 59.3})
    assert not failed.passed and "sw: -0.70" in failed.reason and failed.f1_delta["sw"] == pytest.approx(-0.7)
    assert not judge(agreement=1.0, f1_reference=ref, f1_candidate={"en": 80.0}).passed  # a language lost
    assert judge(mean_cosine=0.995).passed and not judge(mean_cosine=0.98).passed
    assert not judge(agreement=0.995, min_agreement=0.999).passed


def test_parsers():
    assert parse_serve("32x128,1x32") == [(32, 128), (1, 32)]
    assert parse_serve(" 8X16 , 8x16") == [(8, 16)]
    for bad in ("32", "32x", "x128", "0x32", "ax1", ""):
        with pytest.raises(PolydistillError, match="batch×length"):
            parse_serve(bad)
    assert parse_runtimes("onnx-int8,torch-fp32,onnx-int8") == ["onnx-int8", "torch-fp32"]
    with pytest.raises(PolydistillError, match="Unknown runtime 'tensorrt'"):
        parse_runtimes("torch-fp32,tensorrt")
    with pytest.raises(PolydistillError, match="Unknown runtime 'auto'"):
        parse_runtimes("auto")
    assert parse_runtimes("auto", allow_auto=True) == ["auto"]
    with pytest.raises(PolydistillError, match="cannot be combined"):
        parse_runtimes("auto,onnx-int8", allow_auto=True)
