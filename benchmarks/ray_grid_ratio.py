"""Wall time of one real grid run sequentially (one cell at a time, all cores) against ``--backend ray``
(``--workers`` cells at a time, fewer threads each), one after the other on the same machine, each in a
fresh work dir; then both reports, to show the cells' scores side by side.

    python benchmarks/ray_grid_ratio.py --config benchmarks/configs/ray_grid_ratio.yaml \\
        --threads 2 --workers 2 --out benchmarks/results/ray_grid_ratio.json

Run it on an otherwise idle machine (the JSON records the load average before and after each run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "amx")))
    except OSError:
        pass
    return []


def timed_run(args: list[str]) -> dict:
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "polydistill", *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"command": "polydistill " + " ".join(args), "wall_s": round(wall, 1), "load_before": load_before,
            "load_after": os.getloadavg(), "last_line": proc.stdout.strip().splitlines()[-1]}


def scores(work_dir: Path) -> list[dict[str, str]]:
    subprocess.run([sys.executable, "-m", "polydistill", "grid", "report", str(work_dir), "--resamples", "0"],
                   check=True, capture_output=True)
    table = next((work_dir / "report").rglob("table.csv"))
    with table.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("benchmarks/configs/ray_grid_ratio.yaml"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the sequential run")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (cells at a time)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray_grid_ratio.json"))
    args = parser.parse_args()
    cell_threads = max(1, args.threads // args.workers)
    with tempfile.TemporaryDirectory(prefix="ray-ratio-") as tmp:
        seq_dir, ray_dir = Path(tmp) / "sequential", Path(tmp) / "ray"
        sequential = timed_run(["grid", "run", str(args.config), "--threads", str(args.threads),
                                "--work-dir", str(seq_dir), "--no-report"])
        ray = timed_run(["grid", "run", str(args.config), "--backend", "ray", "--workers", str(args.workers),
                         "--threads", str(cell_threads), "--work-dir", str(ray_dir), "--no-report"])
        seq_scores, ray_scores = scores(seq_dir), scores(ray_dir)
    result = {
        "machine": {"cpu": cpu_model(), "flags": cpu_flags(), "cores": os.cpu_count()},
        "config": str(args.config),
        "sequential": {**sequential, "threads": args.threads},
        "ray": {**ray, "workers": args.workers, "threads_per_cell": cell_threads},
        "ratio_sequential_over_ray": round(sequential["wall_s"] / ray["wall_s"], 2),
        "scores": {"sequential": seq_scores, "ray": ray_scores},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(args.out)
    print(f"sequential ({args.threads} threads): {sequential['wall_s']:.0f} s; ray ({args.workers} workers x "
          f"{cell_threads} thread): {ray['wall_s']:.0f} s; ratio {result['ratio_sequential_over_ray']:.2f}x "
          f"({result['machine']['cpu']}); written {args.out}")


if __name__ == "__main__":
    main()
