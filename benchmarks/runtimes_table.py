"""Render a ``polydistill bench --runtimes`` report as the Markdown table of docs/performance.md's
"Runtimes per machine" section: each model in each runtime, median milliseconds per workload, with the
speed-up over the first model (the teacher) in fp32 PyTorch and over the teacher in its own fastest runtime.

    python benchmarks/runtimes_table.py benchmarks/results/runtimes-amd-epyc-avx2.json [--clock wall]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WORKLOADS = ("cpu/b32/L128", "cpu/b32/L32", "cpu/b1/L32")


def render(report: dict, clock: str = "wall") -> str:
    settings = report["settings"]
    machine = settings["machine"]
    best = settings["baseline_best"][clock]
    lines = [f"Machine: **{machine['profile']['label']}** ({machine['cpu']}, {machine['cpu_count']} cores; "
             f"load average at the end {', '.join(f'{x:.1f}' for x in machine['load_average'])}); "
             f"{settings['repeats']} interleaved repeats, median, {clock} clock. Teacher's fastest runtime per "
             "workload: " + ", ".join(f"{key.split('/', 1)[1].replace('/', ' ')} {best[key]['runtime']}"
                                    for key in WORKLOADS) + ".", "",
             "| model | runtime | " + " | ".join(f"{k.split('/', 1)[1].replace('/', ' ')} ms (× fp32 teacher / "
                                                  "× teacher's best)" for k in WORKLOADS) + " |",
             "|---|---|" + "---|" * len(WORKLOADS)]
    for model in report["models"]:
        ratios = report["ratios"][model["name"]]
        cells = []
        for key in WORKLOADS:
            ms = 1000 * model["timings"][key]["median_s"][clock]
            cells.append(f"{ms:,.1f} ({ratios['speedup'][clock][key]:.1f}× / "
                         f"{ratios['speedup_vs_baseline_best'][clock][key]:.2f}×)")
        lines.append(f"| {model['source']} | {model['runtime']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    args = parser.parse_args()
    print(render(json.loads(args.report.read_text(encoding="utf-8")), args.clock), end="")


if __name__ == "__main__":
    main()
