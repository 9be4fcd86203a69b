"""The flagship table (README.md, docs/compress.md) from the committed compress reports in results/flagship/.

    python benchmarks/flagship_rows.py results/flagship/tsm results/flagship/massive ...

Each argument is a folder with a compress run's report.json (copied from OUT/report.json; no weights).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HEADER = ("| run | student | vocab | params (% of teacher) | seen F1 teacher → int8 (retention [95 % CI]) | "
          "unseen F1 teacher → int8 (retention [95 % CI]) | throughput × (b32 L32 / L128) | wall min |\n"
          "|---|---|---|---|---|---|---|---|")


def _target(report: dict, kind: str, group: str | None = None) -> dict | None:
    return next((t for t in report["targets"] if t["kind"] == kind and (group is None or t.get("group") == group)),
                None)


def _retention(report: dict, group: str) -> str:
    models = report["quality"]["models"]
    if group not in models["teacher"]["groups"]:
        return "–"
    teacher, student = 100 * models["teacher"]["groups"][group], 100 * models["int8"]["groups"][group]
    target = _target(report, "retention", group)
    if target is None:
        return f"{teacher:.1f} → {student:.1f}"
    low, high = target["interval"]
    mark = "**met**" if target["met"] else "missed"
    return (f"{teacher:.1f} → {student:.1f} ({100 * target['measured']:.1f} % [{100 * low:.1f}, {100 * high:.1f}], "
            f"{target['goal']} {mark})")


def row(folder: Path) -> str:
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    speed = report["speed"]["models"]
    int8 = speed["int8"]
    ratios = [int8["clocks"]["wall"][str(n)]["throughput_speedup"] for n in report["speed"]["lengths"]]
    params = _target(report, "params")
    share = f"{100 * int8['params_ratio']:.1f} %"
    if params is not None:
        share += f" ({params['goal']} {'**met**' if params['met'] else 'missed'})"
    wall = report["wall_seconds"] / 60
    arch = report["architecture"]
    speed_target = _target(report, "speedup")
    speed_text = " / ".join(f"{r:.1f}×" for r in ratios)
    if speed_target is not None:
        speed_text += f" ({speed_target['goal']} {'**met**' if speed_target['met'] else 'missed'})"
    vocab = int8["shape"]["vocab"]
    return (f"| {folder.name} ({report['dataset']}, {len(report['quality']['languages'])} languages) | "
            f"{arch['layers']}×{arch['hidden']}/{arch['intermediate']} int8 | {vocab:,} | {share} | "
            f"{_retention(report, 'seen')} | {_retention(report, 'unseen')} | {speed_text} | "
            f"{wall:.1f} |")


def main() -> None:
    print(HEADER)
    for folder in sys.argv[1:]:
        print(row(Path(folder)))


if __name__ == "__main__":
    main()
