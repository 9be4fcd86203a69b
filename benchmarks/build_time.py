"""Weight-copy build time: ``build_student`` on the real multilingual-e5-small fixture.

Builds the 6-layer student (same width) and the 6-layer half-width student (hidden 192, FFN 768),
each ``--repeats`` times, and records the wall time of the whole build (load teacher, copy weights,
save safetensors + tokenizer + provenance) as a user experiences it, the median over repeats, and the
size of what was built. The last build of each is kept in ``--work`` for ``polydistill bench``.

    python benchmarks/build_time.py --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from polydistill.architectures import count_parameters
from polydistill.bench.measure import disk_size, machine_info
from polydistill.io import atomic_write_json, package_versions
from polydistill.modeling import load_model

E5 = Path.home() / ".cache/polydistill/e5-small"
WORK = Path.home() / ".cache/polydistill/bench"
CONFIGS = {
    "e5-6L": dict(layers=6),
    "e5-6L-h192": dict(layers=6, hidden=192, intermediate=768),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=E5)
    parser.add_argument("--work", type=Path, default=WORK, help="where the built students are written")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/build_time.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from polydistill.student.build import build_student  # imported late: the student package may be mid-edit

    rows = {}
    for name, kwargs in CONFIGS.items():
        out = args.work / name
        seconds, load_s, copy_s = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            build_student(args.teacher, out, overwrite=True, **kwargs)
            seconds.append(time.perf_counter() - start)
            # the same build split in phases: load the teacher, then copy weights in memory (no save)
            start = time.perf_counter()
            teacher = load_model(args.teacher)
            loaded = time.perf_counter()
            build_student(teacher, None, **kwargs)
            load_s.append(loaded - start)
            copy_s.append(time.perf_counter() - loaded)
            del teacher
        model = load_model(out)
        total, weights = disk_size(out)
        rows[name] = {
            "kwargs": kwargs,
            "path": str(out),
            "seconds": seconds,
            "median_s": statistics.median(seconds),
            "phases_median_s": {"load_teacher": statistics.median(load_s), "copy_in_memory": statistics.median(copy_s)},
            "phases_s": {"load_teacher": load_s, "copy_in_memory": copy_s},
            "params": vars(count_parameters(model)),
            "disk_bytes": total,
            "weights_bytes": weights,
        }
        print(f"{name}: median {rows[name]['median_s']:.2f} s over {args.repeats} "
              f"({', '.join(f'{s:.2f}' for s in seconds)}), {rows[name]['params']['total'] / 1e6:.1f} M params; "
              f"load teacher {statistics.median(load_s):.2f} s, copy in memory {statistics.median(copy_s):.2f} s")
    teacher = count_parameters(load_model(args.teacher))
    atomic_write_json(args.out, {
        "command": "python benchmarks/build_time.py " + f"--threads {args.threads} --repeats {args.repeats}",
        "teacher": str(args.teacher),
        "teacher_params": vars(teacher),
        "students": rows,
        "machine": machine_info(),
        "versions": package_versions(),
    })
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
