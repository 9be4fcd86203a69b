"""compress, measuring before training: how fast candidate students run and how long a KD step takes.

* :func:`measure_candidates` builds every candidate architecture with **random weights** (speed does not
  depend on the values) and a tiny vocabulary (an embedding lookup costs the same for 300 or 250k rows;
  the vocabulary is a VocabReduce of the teacher's tokenizer to the export check sentences, so the same
  tokenizer family and model inputs), exports each to dynamic int8 ONNX when the deployable is int8 (or,
  with ``--speedup-on best``, builds it in every runtime this machine can run), and times all of them side by
  side with the real teacher in one interleaved ``bench_models`` run.
* :func:`measure_step` times, on real training batches, one teacher forward, one student training step
  (forward, loss, backward, AdamW) and one student forward of the chosen architecture (random weights), in
  the run's precision: the input of :func:`polydistill.compress.plan.fit_schedule`.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

from polydistill.architectures import count_parameters, get_adapter, task_of
from polydistill.bench.measure import bench_models
from polydistill.compress.plan import Architecture, CompressSettings
from polydistill.data.tokenize import data_collator, tokenize_task_data
from polydistill.data.types import TaskData
from polydistill.distill.precision import autocast, resolve_precision
from polydistill.export.convert import CHECK_SENTENCES, TRACE_SENTENCES, export_model
from polydistill.export.machine import machine_profile
from polydistill.export.runtimes import plan_candidates
from polydistill.modeling import auto_class, load_model, load_tokenizer
from polydistill.vocab.reduce import plan_vocab
from polydistill.vocab.tokenizer import save_tokenizer

STEP_REPEATS = 3
STEP_BATCHES = 3


def _restore_threads():
    import torch

    threads = torch.get_num_threads()

    @contextlib.contextmanager
    def restored():
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    return restored()


def tiny_tokenizer(teacher: str, out: Path):
    """The teacher's tokenizer reduced to the pieces of the export's trace and check sentences."""
    planning = plan_vocab(teacher, [*TRACE_SENTENCES, *CHECK_SENTENCES], corpus_description="export sentences")
    out.mkdir(parents=True, exist_ok=True)
    return save_tokenizer(planning.tokenizer, planning.reduced_backend, out)


def random_student(teacher_config, arch: Architecture, vocab_size: int, tokenizer=None, seed: int = 0):
    """A model of the teacher's class with ``arch``'s sizes, ``vocab_size`` rows and random weights."""
    import torch

    config = get_adapter(teacher_config).student_config(teacher_config, arch.layers, arch.hidden,
                                                        arch.intermediate, arch.heads)
    config.vocab_size = vocab_size
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):  # special ids inside the new vocabulary
        if getattr(config, name, None) is None:
            continue
        token_id = getattr(tokenizer, name, None) if tokenizer is not None else getattr(config, name)
        setattr(config, name, token_id % vocab_size if token_id is not None else None)
    if hasattr(config, "auto_map"):
        del config.auto_map
    torch.manual_seed(seed)
    return auto_class(task_of(teacher_config)).from_config(config).eval()


def parameters_with_vocab(row: dict[str, Any], vocab_size: int) -> int:
    """A measured candidate's parameter count with ``vocab_size`` word-embedding rows instead of the tiny
    timing vocabulary's (the rows are all that changes)."""
    return row["parameters"] + (vocab_size - row["vocab_size"]) * row["architecture"]["hidden"]


def measure_candidates(settings: CompressSettings, teacher_config, candidates: list[Architecture], work: Path,
                       on_step=None) -> list[dict[str, Any]]:
    """Each candidate's measured speed-up over the teacher's fp32 throughput at batch ``bench_batch_size``
    (the slowest of ``bench_lengths``, wall clock), in the deployable form (``speedup_on``: int8 ONNX, fp32
    PyTorch, or ``best``: its fastest runtime per length among those ``--runtime auto`` tries here)."""
    tokenizer = tiny_tokenizer(settings.teacher, work / "tokenizer")
    paths, rows = [], []
    for arch in candidates:
        folder = work / arch.name
        model = random_student(teacher_config, arch, len(tokenizer), tokenizer, seed=settings.seed)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        rows.append({"architecture": arch.to_dict(), "encoder_parameters": count_parameters(model).encoder,
                     "parameters": count_parameters(model).total, "vocab_size": len(tokenizer)})
        if settings.speedup_on == "int8":
            if on_step:
                on_step(f"exporting candidate {arch.name} to int8")
            export_model(folder, work / f"{arch.name}-int8", quantize="int8")
            folder = work / f"{arch.name}-int8"
        paths.append(folder)
    runtimes = best_runtimes() if settings.speedup_on == "best" else None
    if runtimes:
        (work / "runtimes").mkdir(parents=True, exist_ok=True)
    if on_step:
        on_step(f"timing the teacher and {len(candidates)} candidates side by side"
                + (f" in {', '.join(runtimes)}" if runtimes else ""))
    with _restore_threads():
        report = bench_models([settings.teacher, *paths], names=["teacher", *[a.name for a in candidates]],
                              lengths=settings.bench_lengths, batch_size=settings.bench_batch_size,
                              repeats=settings.speedup_repeats, warmup=1, threads=settings.bench_threads,
                              device="cpu", runtimes=runtimes, work_dir=work / "runtimes" if runtimes else None,
                              baseline_runtimes=["torch-fp32"])  # only the fp32 teacher's time is read
    ratios = report.ratios
    batch = max(1, settings.bench_batch_size)
    for row, arch in zip(rows, candidates, strict=True):
        # each candidate in each runtime measured (one, unless --speedup-on best): its fastest per length
        forms = [name for name in ratios if name == arch.name or name.startswith(f"{arch.name}:")]

        def fastest(length: int, forms: list[str] = forms) -> str:
            return max(forms, key=lambda form: ratios[form]["speedup"]["wall"][f"cpu/b{batch}/L{length}"])

        best = {n: fastest(n) for n in settings.bench_lengths}
        speedups = {n: ratios[best[n]]["speedup"]["wall"][f"cpu/b{batch}/L{n}"] for n in settings.bench_lengths}
        row["speedup_by_length"] = speedups
        row["speedup"] = min(speedups.values())
        row["speedup_cpu_clock"] = min(ratios[best[n]]["speedup"]["cpu"][f"cpu/b{batch}/L{n}"]
                                       for n in settings.bench_lengths)
        if runtimes:
            row["runtime_by_length"] = {n: best[n].partition(":")[2] for n in settings.bench_lengths}
    return rows


def best_runtimes() -> list[str]:
    """The runtimes ``--runtime auto`` would try on this machine that need no calibration data."""
    candidates, _ = plan_candidates(machine_profile(), calibration=False)
    return candidates


def _batches(train, tokenizer, batch_size: int, max_length: int, seed: int) -> list[dict]:
    from datasets import DatasetDict

    pool = train.splits["train"]
    n = min(len(pool), batch_size * STEP_BATCHES)
    sample = pool.shuffle(seed=seed).select(range(n))
    view = TaskData(name=train.name, task=train.task, label_names=train.label_names, languages=train.languages,
                    splits=DatasetDict({"train": sample}))
    encoded = tokenize_task_data(view, tokenizer, max_length=max_length)["train"]
    collate = data_collator(train.task, tokenizer)
    rows = [encoded[i] for i in range(len(encoded))]
    rows = (rows * (batch_size // max(1, len(rows)) + 1))[:max(batch_size, len(rows))]  # tiny data: repeat rows
    return [dict(collate(rows[i:i + batch_size])) for i in range(0, len(rows) - batch_size + 1, batch_size)]


def measure_step(settings: CompressSettings, teacher_config, arch: Architecture, train) -> dict[str, Any]:
    """Median wall seconds of a teacher forward, a student training step and a student forward (see module)."""
    import torch

    training = settings.training
    resolved = resolve_precision(training.precision)
    precision, device = resolved.name, resolved.device
    tokenizer = load_tokenizer(settings.teacher)
    teacher = load_model(settings.teacher).eval().to(device)
    teacher.requires_grad_(False)
    vocab = 1024
    student = random_student(teacher_config, arch, vocab, seed=settings.seed).to(device)
    if training.freeze_word_embeddings:
        student.get_input_embeddings().weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=training.learning_rate)
    batches = _batches(train, tokenizer, training.batch_size, training.max_length, settings.seed)
    pad = student.config.pad_token_id if student.config.pad_token_id is not None else 0

    def on_device(batch, for_student: bool):
        out = {k: v.to(device) for k, v in batch.items()}
        if for_student:  # same shapes and mask in the student's (tiny) vocabulary
            ids = out["input_ids"] % vocab
            out["input_ids"] = torch.where(out["attention_mask"].bool(), ids, torch.full_like(ids, pad))
        return out

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def teacher_forward(batch):
        with torch.no_grad(), autocast(resolved):
            teacher(**{k: v for k, v in on_device(batch, False).items() if k != "labels"})
        sync()

    def student_step(batch):
        student.train()
        with autocast(resolved):
            loss = student(**on_device(batch, True)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()

    def student_forward(batch):
        student.eval()
        with torch.no_grad(), autocast(resolved):
            student(**{k: v for k, v in on_device(batch, True).items() if k != "labels"})
        sync()

    times: dict[str, list[float]] = {"teacher_forward_s": [], "student_step_s": [], "student_forward_s": []}
    calls = {"teacher_forward_s": teacher_forward, "student_step_s": student_step,
             "student_forward_s": student_forward}
    for repeat in range(STEP_REPEATS + 1):  # the first round warms up
        batch = batches[repeat % len(batches)]
        for name, call in calls.items():
            start = time.perf_counter()
            call(batch)
            if repeat:
                times[name].append(time.perf_counter() - start)
    lengths = [int(b["attention_mask"].sum(dim=1).float().mean()) for b in batches]
    return {**{name: round(statistics.median(values), 4) for name, values in times.items()},
            "batch_size": training.batch_size, "mean_tokens": round(statistics.fmean(lengths), 1),
            "padded_length": int(batches[0]["input_ids"].shape[1]), "precision": precision, "device": device,
            "repeats": STEP_REPEATS, "torch_threads": torch.get_num_threads()}


__all__ = ["measure_candidates", "measure_step", "random_student", "tiny_tokenizer"]
