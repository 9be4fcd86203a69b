"""``polydistill student``: build a smaller student from a teacher by weight copy."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.io import check_output_dir
from polydistill.student.build import build_student


def student(
    model: str | None = typer.Argument(None, help="Teacher model directory or hub id (sequence/token classifier or "
                                       "bare encoder).", show_default=False),
    teacher_option: str | None = typer.Option(None, "--teacher", "--model", "-m",
                                              help="The teacher, as an option (same as the argument)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory for the student (must not exist)."),
    layers: int | None = typer.Option(None, "--layers", help="Student depth N (1 ≤ N ≤ teacher depth); default: the teacher's."),
    layer_map: str = typer.Option(
        "alternate-last", "--layer-map",
        help="alternate-last (teacher layers k = i·N_T/N_S, 1-indexed), alternate-first (2n−1), first, last, "
        "or a comma list of 0-indexed teacher layers. Non-integer ratios round half up. importance: "
        "greedily drop the layers whose removal raises the calibration task loss least (needs --calibration-data).",
    ),
    hidden: int | None = typer.Option(None, "--hidden", help="Student hidden size (≤ teacher's)."),
    intermediate: int | None = typer.Option(None, "--intermediate", help="Student FFN size (≤ teacher's)."),
    heads: int | None = typer.Option(
        None, "--heads", help="Number of heads (whole heads kept, evenly spaced); default: keep the count, shrink heads."
    ),
    width_select: str = typer.Option(
        "uniform", "--width-select",
        help="Width selection: uniform | importance (Taylor importance on --calibration-data; keeps the top "
        "hidden dims, FFN units, heads / head dims).",
    ),
    calibration_data: str | None = typer.Option(
        None, "--calibration-data", help="Dataset for importance selection (massive, massive-slots, tsm, universal-ner or a folder)."
    ),
    calibration_languages: str = typer.Option("all", "--calibration-languages", help="Languages of the calibration data."),
    calibration_size: int = typer.Option(256, "--calibration-size", help="Calibration examples (drawn with --seed)."),
    calibration_max_length: int = typer.Option(128, "--calibration-max-length", help="Max tokens per calibration example."),
    data_root: str | None = opt.DATA_ROOT,
    init: str = typer.Option("from-teacher", "--init", help="from-teacher | from-base | from-scratch."),
    base: str | None = typer.Option(None, "--base", help="Pretrained checkpoint the teacher was fine-tuned from (for from-base)."),
    seed: int = opt.SEED,
    overwrite: bool = opt.OVERWRITE,
    threads: int | None = opt.THREADS,
) -> None:
    """Build a student: copy the mapped teacher layers, shrink widths by index selection, save a HF model dir."""
    opt.set_threads(threads)
    teacher = opt.one_model(model, teacher_option, "teacher")

    start = time.perf_counter()
    width_plan, teacher_layers, tokenizer = None, None, None
    wants_importance = width_select == "importance" or layer_map.strip().lower() == "importance"
    if wants_importance:
        from polydistill.student.importance import choose_by_importance

        check_output_dir(out, overwrite)  # refuse before the scoring passes
        choice = choose_by_importance(
            teacher, calibration_data=calibration_data, calibration_languages=calibration_languages,
            calibration_size=calibration_size, data_root=data_root, max_length=calibration_max_length,
            layers=layers, layer_map=layer_map, hidden=hidden, intermediate=intermediate, heads=heads,
            width_select=width_select, seed=seed,
        )
        teacher, tokenizer, width_plan, teacher_layers = (
            choice.teacher, choice.tokenizer, choice.width_plan, choice.teacher_layers)
        if teacher_layers is not None:
            layer_map = "alternate-last"  # not used: the chosen teacher_layers override it
    built = build_student(
        teacher, out, layers=layers, layer_map=layer_map, hidden=hidden, intermediate=intermediate, heads=heads,
        init=init, base=base, seed=seed, overwrite=overwrite, width_select=width_select,
        width_plan=width_plan, teacher_layers=teacher_layers, tokenizer=tokenizer,
    )
    prov, width = built.provenance, built.provenance["width"]
    typer.echo(
        f"student written to {built.path} in {time.perf_counter() - start:.1f} s: {prov['num_layers']} layers "
        f"(teacher layers {prov['teacher_layers']}, 0-indexed), hidden {width['hidden_size']}, "
        f"FFN {width['intermediate_size']}, {width['num_heads']} heads, init {prov['init']}, "
        f"{prov['parameters']:,} parameters (teacher {prov['teacher_parameters']:,})."
    )


def register(app: typer.Typer) -> None:
    app.command(name="student")(student)
