"""Does ``torch.compile`` pay on this CPU? The 6-layer e5 student's train step and the 12-layer teacher's
forward, eager vs compiled (inductor), fp32 and bf16 autocast, side by side in one process; compile
time recorded separately. Issue #14: adopt behind a flag only if it gains ≥ 1.2× at an acceptable
compile time.

    python benchmarks/compile_speed.py --threads 2 --repeats 5 --out benchmarks/results/compile_speed.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

E5 = Path.home() / ".cache/polydistill/e5-small"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=E5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/compile_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from transformers import AutoModelForSequenceClassification

    from polydistill.io import atomic_write_json, package_versions
    from polydistill.student.build import build_student

    teacher = AutoModelForSequenceClassification.from_pretrained(str(args.model), num_labels=3).eval()
    teacher.requires_grad_(False)
    student = build_student(teacher, layers=6).model.train()
    student.get_input_embeddings().weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(5, teacher.config.vocab_size, (args.batch_size, args.length))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.arange(args.batch_size) % 3}
    features = {k: v for k, v in batch.items() if k != "labels"}

    def step(model):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def forward(model):
        with torch.inference_mode():
            model(**features)

    compiled_student, compiled_teacher = torch.compile(student), torch.compile(teacher)
    cases = {"student_step": (step, student, compiled_student), "teacher_forward": (forward, teacher, compiled_teacher)}
    rows = {}
    for precision in ("fp32", "bf16"):
        for name, (fn, eager, compiled) in cases.items():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                start = time.perf_counter()
                fn(compiled)  # the first call compiles
                compile_s = time.perf_counter() - start
                fn(eager)
                samples = {"eager": [], "compiled": []}
                for _ in range(args.repeats):
                    for kind, model in (("eager", eager), ("compiled", compiled)):
                        t = time.process_time()
                        fn(model)
                        samples[kind].append(time.process_time() - t)
            med = {k: statistics.median(v) for k, v in samples.items()}
            rows[f"{name}_{precision}"] = {"eager_cpu_s": round(med["eager"], 4), "compiled_cpu_s": round(med["compiled"], 4),
                                           "speedup": round(med["eager"] / med["compiled"], 3),
                                           "first_call_s": round(compile_s, 1)}
            print(name, precision, rows[f"{name}_{precision}"], flush=True)
    atomic_write_json(args.out, {"model": str(args.model), "threads": args.threads, "batch_size": args.batch_size,
                                 "length": args.length, "repeats": args.repeats, "measure": "median process CPU seconds",
                                 "rows": rows, "versions": package_versions()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
