"""KD step cost ÷ (student train step + teacher forward), ours vs the naive way, in fp32 and bf16
autocast, with the live teacher and with the teacher-output cache, on real e5-small.

Teacher: multilingual-e5-small (12 layers, hidden 384, 250k vocabulary) wrapped with a fresh
sequence-classification head (3 labels); student: its 6-layer from-teacher copy (``build_student``),
word embeddings frozen (as in the CPU runs). Per repeat, interleaved in one process on the same
batch: (a) a plain student train step (forward + CE + backward + AdamW step), (b) a teacher forward
(no_grad), (c) our KD step (``PolydistillTrainer.compute_loss``: hooks on the 6 mapped layers only,
maps kept by the recording attention function in mapped layers, SDPA elsewhere; all five terms +
backward + step) with the live teacher, (d) the same step reading the teacher's outputs from the
cache (``distill/teacher_cache.py``), (e) the naive KD step (both models in eager attention with
output_attentions + output_hidden_states, same five terms). (a)–(d) run in fp32 and under bf16
autocast (``--precisions``). Ratios: ours ÷ (a + b) and the naive one, cached ÷ (a) (the cache's
promise: a KD step costs about a student step), and every step against the fp32 live KD step.
Medians of process CPU time (stable on a shared machine with one thread) and wall time.

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
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kd_step_ratio.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from polydistill.data.tokenize import data_collator
    from polydistill.distill import losses
    from polydistill.distill.settings import KDSettings
    from polydistill.distill.teacher_cache import build_cache
    from polydistill.distill.trainer import PolydistillTrainer, objective_of
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
        trainer = PolydistillTrainer(model=ours_student, args=TrainingArguments(output_dir=tmp, report_to="none",
                                                                                use_cpu=True),
                                     objective=objective_of(kd), kd=kd, teacher=teacher, layer_map=layer_map)
    collator = data_collator("sequence", tokenizer)
    caches = {}

    def student_step(batch):
        loss = plain_student(**batch).loss
        loss.backward()
        plain_opt.step()
        plain_opt.zero_grad(set_to_none=True)

    def teacher_forward(batch):
        with torch.no_grad():
            teacher(**{k: v for k, v in batch.items() if k != "labels"})

    def ours_step(batch):
        loss = trainer.compute_loss(ours_student, dict(batch))
        loss.backward()
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)

    def cached_step(batch):
        trainer.cache = caches[batch["input_ids"].shape[1], torch.is_autocast_cpu_enabled()]
        try:
            ours_step({**batch, "example_index": torch.arange(len(batch["input_ids"]))})
        finally:
            trainer.cache = None

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

    def in_precision(fn, precision):
        def run(batch):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                fn(batch)
        return run

    steps = {}
    for precision in args.precisions:
        steps.update({f"student_step_{precision}": in_precision(student_step, precision),
                      f"teacher_forward_{precision}": in_precision(teacher_forward, precision),
                      f"kd_ours_{precision}": in_precision(ours_step, precision),
                      f"kd_cached_{precision}": in_precision(cached_step, precision)})
    steps["kd_naive_fp32"] = naive_step
    rows = []
    shuffler = random.Random(0)
    for length in args.lengths:
        batch = make_batch(tokenizer, args.batch_size, length)
        rows_of_batch = [{k: v[i].tolist() for k, v in batch.items() if k != "labels"} | {"labels": int(batch["labels"][i])}
                         for i in range(args.batch_size)]
        from datasets import Dataset

        as_dataset = Dataset.from_list(rows_of_batch)
        for precision in args.precisions:  # the cache as a run builds it: once, in the run's precision
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                caches[length, precision == "bf16"] = build_cache(trainer._teacher_side, as_dataset, collator,
                                                                  args.batch_size, "float16")
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
        row = {"length": length, "batch_size": args.batch_size,
               **{f"{k}_cpu_s": round(v, 4) for k, v in med.items()},
               **{f"{k}_wall_s": round(v, 4) for k, v in med_wall.items()}}
        for clock, m in (("cpu", med), ("wall", med_wall)):
            for precision in args.precisions:
                base = m[f"student_step_{precision}"] + m[f"teacher_forward_{precision}"]
                row[f"ratio_ours_{precision}_{clock}"] = round(m[f"kd_ours_{precision}"] / base, 3)
                row[f"cached_over_student_{precision}_{clock}"] = round(
                    m[f"kd_cached_{precision}"] / m[f"student_step_{precision}"], 3)
                for kind in ("ours", "cached"):
                    row[f"speedup_{kind}_{precision}_vs_fp32_live_{clock}"] = round(
                        m["kd_ours_fp32"] / m[f"kd_{kind}_{precision}"], 3)
            row[f"ratio_naive_fp32_{clock}"] = round(
                m["kd_naive_fp32"] / (m["student_step_fp32"] + m["teacher_forward_fp32"]), 3)
        row["raw_cpu_seconds"], row["raw_wall_seconds"] = cpu, wall
        rows.append(row)
        print(f"len {length}: " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()), flush=True)
        print("   " + ", ".join(f"{k} {v}" for k, v in row.items() if k.startswith(("ratio", "cached", "speedup"))),
              flush=True)

    atomic_write_json(args.out, {
        "model": str(args.model), "threads": args.threads, "measure": "median process CPU seconds (and wall)", "repeats": args.repeats,
        "student": "6-layer from-teacher copy, word embeddings frozen", "kd": kd.model_dump(mode="json"),
        "precisions": args.precisions, "cache_dtype": "float16",
        "rows": rows, "versions": package_versions(),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
