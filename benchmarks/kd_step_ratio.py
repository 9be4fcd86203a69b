"""KD step cost ÷ (student train step + teacher forward), ours vs the naive way, on real e5-small.

Teacher: multilingual-e5-small (12 layers, hidden 384, 250k vocabulary) wrapped with a fresh
sequence-classification head (3 labels); student: its 6-layer from-teacher copy (``build_student``),
word embeddings frozen (as in the CPU runs). Per repeat, interleaved in one process on the same
batch: (a) a plain student train step (forward + CE + backward + AdamW step), (b) a teacher forward
(no_grad), (c) our KD step (``KDTrainer.compute_loss``: hooks on the 6 mapped layers only, maps kept by the
recording attention function in mapped layers, SDPA elsewhere; all five terms + backward + step), (d) the naive KD step (both
models in eager attention with output_attentions + output_hidden_states, same five terms).
ratio = median(KD step) / (median(a) + median(b)), on process CPU time (stable on a shared machine
with one thread) and, for reference, on wall time.

    python benchmarks/kd_step_ratio.py --threads 2 --repeats 7 --out benchmarks/results/kd_step_ratio.json
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

E5 = Path.home() / ".cache/polydistill/e5-small"
TSM = Path(__file__).resolve().parents[2] / "shared/data/tsm/sentiment/english/train_text.txt"


def make_batch(tokenizer, batch_size: int, length: int) -> dict[str, torch.Tensor]:
    """Real tweets (or a fallback sentence) padded/truncated to exactly ``length`` tokens."""
    lines = TSM.read_text(encoding="utf-8").splitlines()[:batch_size] if TSM.is_file() else []
    lines = (lines + ["a short multilingual sentence about the weather"] * batch_size)[:batch_size]
    # repeat each text so every row is long enough, then truncate: a full-length batch, no padding
    enc = tokenizer([(t + " ") * 40 for t in lines], truncation=True, max_length=length,
                    padding="max_length", return_tensors="pt")
    enc["labels"] = torch.arange(batch_size) % 3
    return dict(enc)


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process). On a shared machine the wall time swings with other
    people's load; with one intra-op thread the process CPU time is the stable measure of work."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=E5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lengths", type=int, nargs="+", default=[24, 128])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kd_step_ratio.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from polydistill.distill import losses
    from polydistill.distill.settings import KDSettings
    from polydistill.distill.trainer import KDTrainer
    from polydistill.io import atomic_write_json, package_versions
    from polydistill.modeling import load_tokenizer
    from polydistill.student.build import build_student

    tokenizer = load_tokenizer(args.model)
    teacher = AutoModelForSequenceClassification.from_pretrained(str(args.model), num_labels=3)
    teacher.eval().requires_grad_(False)
    student = build_student(teacher, layers=6, tokenizer=tokenizer).model
    layer_map = list(range(1, 12, 2))
    kd = KDSettings()

    # One student and one teacher serve every variant (the naive one switches them to eager attention and
    # back), so memory stays at two models; timing does not depend on the weights' values.
    student.train()
    student.get_input_embeddings().weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-5)
    plain_student = ours_student = naive_student = student
    plain_opt = ours_opt = naive_opt = optimizer
    naive_teacher = teacher
    with tempfile.TemporaryDirectory() as tmp:
        trainer = KDTrainer(model=ours_student, args=TrainingArguments(output_dir=tmp, report_to="none"),
                            teacher=teacher, kd=kd, layer_map=layer_map, task="sequence")

    def student_step(batch):
        loss = plain_student(**batch).loss
        loss.backward()
        plain_opt.step()
        plain_opt.zero_grad(set_to_none=True)

    def teacher_forward(batch):
        with torch.no_grad():
            teacher(**{k: v for k, v in batch.items() if k != "labels"})

    def ours_step(batch):
        loss = trainer.compute_loss(ours_student, batch)
        loss.backward()
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)

    def naive_step(batch):
        previous = naive_student.config._attn_implementation, naive_teacher.config._attn_implementation
        naive_student.set_attn_implementation("eager")
        naive_teacher.set_attn_implementation("eager")
        try:
            naive_kd(batch)
        finally:  # back to what ours installed (its recording attention function)
            naive_student.set_attn_implementation(previous[0])
            naive_teacher.set_attn_implementation(previous[1])

    def naive_kd(batch):
        feats = {k: v for k, v in batch.items() if k != "labels"}
        mask = feats["attention_mask"]
        with torch.no_grad():
            t = naive_teacher(**feats, output_attentions=True, output_hidden_states=True)
        s = naive_student(**feats, output_attentions=True, output_hidden_states=True)
        loss = (
            losses.attention_loss(s.attentions, [t.attentions[k] for k in layer_map], mask)
            + losses.hidden_loss(s.hidden_states[1:], [t.hidden_states[k + 1] for k in layer_map], mask)
            + losses.embedding_loss(s.hidden_states[0], t.hidden_states[0], mask)
            + losses.prediction_loss(s.logits, t.logits)
            + losses.classification_loss(s.logits, batch["labels"])
        )
        loss.backward()
        naive_opt.step()
        naive_opt.zero_grad(set_to_none=True)

    steps = {"student_step": student_step, "teacher_forward": teacher_forward, "kd_ours": ours_step,
             "kd_naive": naive_step}
    rows = []
    shuffler = random.Random(0)
    for length in args.lengths:
        batch = make_batch(tokenizer, args.batch_size, length)
        for fn in steps.values():  # warm-up
            fn(batch)
        wall: dict[str, list[float]] = {name: [] for name in steps}
        cpu: dict[str, list[float]] = {name: [] for name in steps}
        order = list(steps)
        for _ in range(args.repeats):
            shuffler.shuffle(order)  # interleaved in a fresh order each repeat: drift and order effects even out
            for name in order:
                w, c = timed(lambda fn=steps[name], batch=batch: fn(batch))
                wall[name].append(w)
                cpu[name].append(c)
        med = {name: statistics.median(v) for name, v in cpu.items()}
        med_wall = {name: statistics.median(v) for name, v in wall.items()}
        base = med["student_step"] + med["teacher_forward"]
        base_wall = med_wall["student_step"] + med_wall["teacher_forward"]
        row = {"length": length, "batch_size": args.batch_size, **{f"{k}_cpu_s": round(v, 4) for k, v in med.items()},
               "ratio_ours": round(med["kd_ours"] / base, 3), "ratio_naive": round(med["kd_naive"] / base, 3),
               "ratio_ours_wall": round(med_wall["kd_ours"] / base_wall, 3),
               "ratio_naive_wall": round(med_wall["kd_naive"] / base_wall, 3),
               "raw_cpu_seconds": cpu, "raw_wall_seconds": wall}
        rows.append(row)
        print(f"len {length:4d} (CPU s): student {med['student_step']:.3f}  teacher {med['teacher_forward']:.3f}  "
              f"ours {med['kd_ours']:.3f} (×{row['ratio_ours']})  naive {med['kd_naive']:.3f} "
              f"(×{row['ratio_naive']}); wall ratios ×{row['ratio_ours_wall']} / ×{row['ratio_naive_wall']}",
              flush=True)

    print("\n| seq len | student step | teacher fwd | KD ours | KD naive | ratio ours | ratio naive | (wall: ours / naive) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['length']} | {r['student_step_cpu_s']} | {r['teacher_forward_cpu_s']} | {r['kd_ours_cpu_s']} | "
              f"{r['kd_naive_cpu_s']} | {r['ratio_ours']} | {r['ratio_naive']} | "
              f"{r['ratio_ours_wall']} / {r['ratio_naive_wall']} |")
    print("(CPU seconds per step, median; ratio = KD step / (student step + teacher forward))")
    atomic_write_json(args.out, {
        "model": str(args.model), "threads": args.threads, "measure": "median process CPU seconds (and wall)", "repeats": args.repeats,
        "student": "6-layer from-teacher copy, word embeddings frozen", "kd": kd.model_dump(),
        "rows": rows, "versions": package_versions(),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
