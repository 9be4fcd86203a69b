"""Render the measured section of docs/performance.md from benchmarks/results/*.json.

Every number in the generated tables comes from a results file written by a benchmark run; the
section between the ``<!-- measured:start -->`` and ``<!-- measured:end -->`` markers is replaced.

    python benchmarks/report.py --write docs/performance.md     # or without --write: print it
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from polydistill.errors import require
from polydistill.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"
START, END = "<!-- measured:start -->", "<!-- measured:end -->"
CLOCKS = ("wall", "cpu")


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _status(value: float | None, ok) -> str:
    return "–" if value is None else ("**met**" if ok(value) else "**missed**")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _bench_command(bench: dict) -> str:
    s = bench["settings"]
    models = " ".join(f"--model {m['path'].replace(str(Path.home()), '~')}" for m in bench["models"])
    return (f"polydistill bench {models} --threads {s['machine']['torch_threads']} --repeats {s['repeats']} "
            f"--lengths {','.join(map(str, s['lengths']))} --batch-size {s['batch_size']} "
            f"--out benchmarks/results/bench.json")


def find_model(bench: dict, suffix: str) -> str | None:
    return next((m["name"] for m in bench["models"] if m["name"] == suffix), None)


def kd_ratios(row: dict) -> dict[str, tuple[float, float]]:
    """{clock: (ours, naive)} (fp32, live teacher) from a kd_step_ratio.json row."""
    return {clock: (row[f"ratio_ours_fp32_{clock}"], row[f"ratio_naive_fp32_{clock}"]) for clock in ("cpu", "wall")}


def targets(bench: dict | None, kd: dict | None, vocab: dict | None) -> list[str]:
    rows = []
    if bench:
        b = bench["settings"]["batch_size"]
        for name, label, goal in (("e5-6L", "6L vs 12L same width, throughput", 1.9),
                                  ("e5-6L-h192", "6L half-width vs 12L, throughput", 3.0)):
            if not find_model(bench, name):
                continue
            for length in bench["settings"]["lengths"]:
                key = f"cpu/b{b}/L{length}"
                wall = bench["ratios"][name]["speedup"]["wall"].get(key)
                cpu = bench["ratios"][name]["speedup"].get("cpu", {}).get(key)
                rows.append([f"{label}, batch {b}, length {length}", f"≥ {goal}×",
                             f"{wall:.2f}× {_status(wall, lambda v, g=goal: v >= g)}",
                             "–" if cpu is None else f"{cpu:.2f}× {_status(cpu, lambda v, g=goal: v >= g)}",
                             "`bench.json`"])
    if kd:
        def cell(ours, naive):
            if ours is None:
                return "–"
            return (f"ours {ours:.3f} (≤ 1.15 {_status(ours, lambda v: v <= 1.15)}), naive {naive:.3f} "
                    f"(ours < naive {_status(ours, lambda v, n=naive: v < n)})")

        for row in kd["rows"]:
            clocks = kd_ratios(row)
            where = f"batch {row['batch_size']}, length {row['length']}"
            rows.append([f"KD step ratio (fp32, live teacher), {where}", "≤ 1.15 and < naive",
                         cell(*clocks.get("wall", (None, None))), cell(*clocks.get("cpu", (None, None))),
                         "`kd_step_ratio.json`"])
            if "speedup_cached_bf16_vs_fp32_live_cpu" in row:
                fast = [row[f"speedup_cached_bf16_vs_fp32_live_{c}"] for c in ("wall", "cpu")]
                rows.append([f"KD step bf16 + teacher cache vs fp32 live teacher, {where}", "≥ 2.5×",
                             *(f"{v:.2f}× {_status(v, lambda x: x >= 2.5)}" for v in fast), "`kd_step_ratio.json`"])
                for precision in ("fp32", "bf16"):
                    cached = [row[f"cached_over_student_{precision}_{c}"] for c in ("wall", "cpu")]
                    rows.append([f"KD step with cached teacher ÷ student step ({precision}), {where}", "≤ 1.1",
                                 *(f"{v:.3f} {_status(v, lambda x: x <= 1.1)}" for v in cached),
                                 "`kd_step_ratio.json`"])
    if vocab and "e5-small" in vocab["models"]:
        v = vocab["models"]["e5-small"]
        frac = v["params_fraction"]
        rows.append([f"vocab-reduced e5-small ({vocab['corpus']['source']}), params", "≤ 40 %",
                     f"{frac:.1%} {_status(frac, lambda x: x <= 0.40)}", "–", "`vocab_reduce.json`"])
    return _table(["target", "goal", "measured (wall clock)", "measured (CPU clock)", "source"], rows)


def bench_tables(bench: dict) -> list[str]:
    s = bench["settings"]
    m = s["machine"]
    out = [f"Command: `{_bench_command(bench)}`", "",
           f"Machine: {m['cpu']}, {m['cpu_count']} cores (shared), torch threads {m['torch_threads']}, "
           f"load average at the end {', '.join(f'{x:.1f}' for x in m.get('load_average', []))}; "
           f"torch {bench['settings']['versions']['torch']}, transformers {bench['settings']['versions']['transformers']}; "
           f"median of {s['repeats']} interleaved runs after {s['warmup']} warm-up; random token ids at full length, "
           f"attention `{bench['models'][0]['shape']['attn_implementation']}`.", ""]
    rows = []
    for model in bench["models"]:
        p, sh, r = model["params"], model["shape"], bench["ratios"][model["name"]]
        rows.append([f"`{model['name']}`", f"{sh['layers']}×{sh['hidden']}/{sh['intermediate']}", f"{sh['vocab']:,}",
                     f"{p['total'] / 1e6:.2f}", f"{p['embedding'] / 1e6:.2f}", f"{p['encoder'] / 1e6:.2f}",
                     f"{p['other'] / 1e6:.2f}", f"{model['disk_bytes'] / 1e6:.1f}", f"{r['params']:.1%}",
                     f"{r['disk']:.1%}"])
    out += ["**Size** (parameters in millions; embedding = word + position + type embeddings and their LayerNorm; "
            "other = pooler / head; % of the first row)", ""]
    out += _table(["model", "layers×hidden/FFN", "vocab", "params M", "embedding M", "encoder M", "other M",
                   "disk MB", "params %", "disk %"], rows)
    for clock in CLOCKS:
        if clock not in bench["settings"].get("clocks", ["wall"]):
            continue
        out += ["", f"**Speed, {clock} clock** (latency in ms at batch 1; throughput in sequences/s at batch "
                f"{s['batch_size']}; × = speed-up vs `{bench['baseline']}` on the same clock)", ""]
        header = ["model"]
        for key in bench["cases"]:
            device, batch, length = key.split("/")
            device = "" if device == "cpu" else f"{device} "  # the device is CPU unless said otherwise
            header.append(f"{device}{'latency' if batch == 'b1' else 'throughput'} {batch} {length}")
        rows = []
        for model in bench["models"]:
            cells = [f"`{model['name']}`"]
            for key in bench["cases"]:
                t = model["timings"][key]
                value = t["median_s"][clock] * 1e3 if t["batch_size"] == 1 else t["sequences_per_s"][clock]
                ratio = bench["ratios"][model["name"]]["speedup"][clock][key]
                cells.append(f"{value:.1f} ({ratio:.2f}×)")
            rows.append(cells)
        out += _table(header, rows)
    return out


def build_table(build: dict) -> list[str]:
    rows = []
    for name, r in build["students"].items():
        rows.append([f"`{name}`", ", ".join(f"{k}={v}" for k, v in r["kwargs"].items()),
                     f"{r['median_s']:.2f}", ", ".join(f"{x:.2f}" for x in r["seconds"]),
                     f"{r['phases_median_s']['copy_in_memory']:.2f}", f"{r['params']['total'] / 1e6:.1f}",
                     f"{r['disk_bytes'] / 1e6:.0f}"])
    return [f"Command: `{build['command']}` (teacher `{build['teacher'].replace(str(Path.home()), '~')}`)", ""] + _table(
        ["student", "build_student(...)", "end-to-end s (median)", "runs s", "copy in memory s (median)",
         "params M", "disk MB"], rows)


def vocab_table(vocab: dict) -> list[str]:
    rows = []
    for name, r in vocab["models"].items():
        rows.append([f"`{name}` → `{Path(r['reduced']).name}`", f"{r['seconds']:.1f}",
                     f"{r['vocab_before']:,} → {r['vocab_after']:,}",
                     f"{r['params_before']['total'] / 1e6:.1f} → {r['params_after']['total'] / 1e6:.1f}",
                     f"{r['params_fraction']:.1%}", f"{r['disk_before'] / 1e6:.0f} → {r['disk_after'] / 1e6:.0f}"])
    c = vocab["corpus"]
    return [f"Command: `{vocab['command']}` — corpus: {c['source']} ({c['sentences']:,} sentences); each "
            "reduction runs `polydistill vocab reduce --model M --corpus FILE --out DIR` (time includes process start).",
            ""] + _table(["model", "time s", "embedding rows", "params M", "params kept", "disk MB"], rows)


def kd_table(kd: dict) -> list[str]:
    rows = []
    for r in kd["rows"]:
        for precision in kd.get("precisions", ["fp32"]):
            rows.append([r["length"], r["batch_size"], precision,
                         *(r[f"{k}_{precision}_cpu_s"] for k in ("student_step", "teacher_forward", "kd_ours",
                                                                  "kd_cached")),
                         r["kd_naive_fp32_cpu_s"] if precision == "fp32" else "–",
                         r[f"ratio_ours_{precision}_cpu"], r[f"cached_over_student_{precision}_cpu"],
                         f"{r[f'speedup_cached_{precision}_vs_fp32_live_cpu']}×"])
    return [f"Command: `python benchmarks/kd_step_ratio.py --threads {kd['threads']} --repeats {kd['repeats']}` "
            f"(medians in process CPU seconds, interleaved in one process; student: {kd['student']}; teacher "
            f"cache stored as {kd.get('cache_dtype', 'float16')}; bf16 = autocast for student and teacher)", ""] + _table(
        ["length", "batch", "precision", "student step s", "teacher forward s", "KD live s", "KD cached s",
         "KD naive s", "KD live ÷ (student + teacher)", "KD cached ÷ student", "KD cached vs fp32 live"], rows)


def render() -> str:
    bench, build, vocab, kd = (_load(n) for n in ("bench.json", "build_time.json", "vocab_reduce.json",
                                                   "kd_step_ratio.json"))
    out = [START, "", "### Targets", ""] + targets(bench, kd, vocab)
    if bench:
        out += ["", "### (d) Teacher vs students: `polydistill bench`", ""] + bench_tables(bench)
    if kd:
        out += ["", "### (a) KD step cost: precision and the teacher-output cache", ""] + kd_table(kd)
    if build:
        out += ["", "### (b) Weight-copy build time", ""] + build_table(build)
    if vocab:
        out += ["", "### (c) Vocabulary reduction", ""] + vocab_table(vocab)
    profiles = sorted(RESULTS.glob("profile_*.md"))
    if profiles:
        out += ["", "### Profiles (where one forward spends its time)", ""]
        for path in profiles:
            lines = path.read_text(encoding="utf-8").splitlines()
            out += [f"From `benchmarks/results/{path.name}` ({lines[0].lstrip('# ')}):", ""]
            out += [f"- {lines[i].lstrip('# ')}: {lines[i + 1]}; {lines[i + 2].strip()}"
                    for i in range(len(lines)) if lines[i].startswith("## ")]
            out.append("")
    out.append(END)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the measured section of this markdown file")
    args = parser.parse_args()
    section = render()
    if not args.write:
        print(section)
        return
    text = args.write.read_text(encoding="utf-8")
    require(START in text and END in text, f"{args.write} has no {START} … {END} section to replace.")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    atomic_write_text(args.write, head + section + tail)
    print(f"updated {args.write}")


if __name__ == "__main__":
    main()
