"""benchmarks/report.py: the measured section of docs/performance.md, rendered from results files."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from polydistill.bench.measure import Case, CaseTiming, ModelResult, ParamCounts, compute_ratios
from polydistill.errors import PolydistillError

REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


@pytest.fixture()
def report(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    return module


def _model(name, layers, total, medians):
    cases = {Case("cpu", n, b): t for (n, b), t in medians.items()}
    timings = {c.key: CaseTiming(c, {"wall": [t], "cpu": [t / 2]}) for c, t in cases.items()}
    shape = {"layers": layers, "hidden": 384, "intermediate": 1536, "vocab": 1000, "attn_implementation": "sdpa"}
    return ModelResult(name, f"/m/{name}", ParamCounts(total, total // 2, total // 2, total // 2, 0), total * 4,
                       total * 4, shape, timings)


def _bench(tmp_path, student_speedup: float):
    teacher = _model("e5-small", 12, 1000, {(32, 1): 0.1, (32, 32): 2.0})
    student = _model("e5-6L", 6, 900, {(32, 1): 0.1 / student_speedup, (32, 32): 2.0 / student_speedup})
    models = [teacher, student]
    data = {
        "baseline": "e5-small",
        "settings": {"repeats": 3, "warmup": 1, "lengths": [32], "batch_size": 32, "clocks": ["wall", "cpu"],
                     "machine": {"cpu": "x", "cpu_count": 2, "torch_threads": 1, "load_average": [1, 1, 1]},
                     "versions": {"torch": "t", "transformers": "tf"}},
        "cases": ["cpu/b1/L32", "cpu/b32/L32"],
        "models": [m.to_dict() for m in models],
        "ratios": compute_ratios(models),
    }
    (tmp_path / "bench.json").write_text(json.dumps(data))


def _kd_row(length, ours_cpu, naive_cpu, ours_wall=None, naive_wall=None, cached=1.05, speedup=3.0):
    """A kd_step_ratio.json row (fp32 and bf16, live and cached teacher) with the given ratios."""
    row = {"length": length, "batch_size": 32}
    for clock, (ours, naive) in {"cpu": (ours_cpu, naive_cpu),
                                 "wall": (ours_wall or ours_cpu, naive_wall or naive_cpu)}.items():
        for precision in ("fp32", "bf16"):
            row[f"ratio_ours_{precision}_{clock}"] = ours
            row[f"cached_over_student_{precision}_{clock}"] = cached
            row[f"speedup_ours_{precision}_vs_fp32_live_{clock}"] = 1.0
            row[f"speedup_cached_{precision}_vs_fp32_live_{clock}"] = speedup
        row[f"ratio_naive_fp32_{clock}"] = naive
    for precision in ("fp32", "bf16"):
        for step in ("student_step", "teacher_forward", "kd_ours", "kd_cached"):
            row[f"{step}_{precision}_cpu_s"] = 1.0
    row["kd_naive_fp32_cpu_s"] = 2.0
    return row


def test_targets_met_and_missed(report, tmp_path):
    _bench(tmp_path, student_speedup=2.0)
    (tmp_path / "kd_step_ratio.json").write_text(json.dumps({"threads": 1, "repeats": 7, "student": "s",
                                                             "precisions": ["fp32", "bf16"], "rows": [
        _kd_row(24, 1.067, 1.6), _kd_row(128, 1.2, 1.6, cached=1.3, speedup=2.0)]}))
    text = report.render()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "2.00× **met**" in rows["6L vs 12L same width, throughput, batch 32, length 32"]
    live = "KD step ratio (fp32, live teacher), batch 32, length {}"
    assert "ours 1.067 (≤ 1.15 **met**), naive 1.600 (ours < naive **met**)" in rows[live.format(24)]
    assert "ours 1.200 (≤ 1.15 **missed**), naive 1.600 (ours < naive **met**)" in rows[live.format(128)]
    assert "3.00× **met**" in rows["KD step bf16 + teacher cache vs fp32 live teacher, batch 32, length 24"]
    assert "2.00× **missed**" in rows["KD step bf16 + teacher cache vs fp32 live teacher, batch 32, length 128"]
    assert "1.300 **missed**" in rows["KD step with cached teacher ÷ student step (fp32), batch 32, length 128"]
    assert "--model /m/e5-small --model /m/e5-6L" in text


def test_kd_rows_with_cpu_and_wall_clocks(report, tmp_path):
    (tmp_path / "kd_step_ratio.json").write_text(json.dumps({"threads": 1, "repeats": 3, "student": "s", "rows": [
        _kd_row(128, 1.067, 1.2, ours_wall=1.3, naive_wall=1.1)]}))
    row = next(line for line in report.render().splitlines() if line.startswith("| KD step ratio"))
    wall, cpu = row.split(" | ")[2:4]
    assert wall == "ours 1.300 (≤ 1.15 **missed**), naive 1.100 (ours < naive **missed**)"
    assert cpu == "ours 1.067 (≤ 1.15 **met**), naive 1.200 (ours < naive **met**)"


def test_slow_student_is_reported_missed(report, tmp_path):
    _bench(tmp_path, student_speedup=1.5)
    text = report.render()
    assert "1.50× **missed**" in text and "**met**" not in text.split("### (d)")[0]


def test_write_replaces_only_the_marked_section(report, tmp_path, monkeypatch):
    _bench(tmp_path, student_speedup=2.0)
    doc = tmp_path / "performance.md"
    doc.write_text(f"intro\n{report.START}\nold numbers\n{report.END}\noutro\n")
    monkeypatch.setattr(sys, "argv", ["report.py", "--write", str(doc)])
    report.main()
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "old numbers" not in text and "2.00× **met**" in text
    doc.write_text("no markers here\n")
    with pytest.raises(PolydistillError, match="section"):
        report.main()
