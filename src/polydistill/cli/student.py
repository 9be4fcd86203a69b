"""``polydistill student``: build a smaller student from a teacher by weight copy."""

from __future__ import annotations

from pathlib import Path

import typer


def student(
    teacher: str = typer.Argument(..., help="Teacher model directory or hub id (sequence/token classifier or bare encoder)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory for the student (must not exist)."),
    layers: int | None = typer.Option(None, "--layers", help="Student depth N (1 ≤ N ≤ teacher depth); default: the teacher's."),
    layer_map: str = typer.Option(
        "alternate-last", "--layer-map",
        help="alternate-last (teacher layers k = i·N_T/N_S, 1-indexed), alternate-first (2n−1), first, last, "
        "or a comma list of 0-indexed teacher layers. Non-integer ratios round half up.",
    ),
    hidden: int | None = typer.Option(None, "--hidden", help="Student hidden size (≤ teacher's)."),
    intermediate: int | None = typer.Option(None, "--intermediate", help="Student FFN size (≤ teacher's)."),
    heads: int | None = typer.Option(
        None, "--heads", help="Number of heads (whole heads kept, evenly spaced); default: keep the count, shrink heads."
    ),
    width_select: str = typer.Option("uniform", "--width-select", help="Width selection: uniform | importance."),
    init: str = typer.Option("from-teacher", "--init", help="from-teacher | from-base | from-scratch."),
    base: str | None = typer.Option(None, "--base", help="Pretrained checkpoint the teacher was fine-tuned from (for from-base)."),
    seed: int = typer.Option(0, "--seed", help="Seed for every freshly initialised tensor."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
) -> None:
    """Build a student: copy the mapped teacher layers, shrink widths by index selection, save a HF model dir."""
    import time

    from polydistill.student.build import build_student

    start = time.perf_counter()
    built = build_student(
        teacher, out, layers=layers, layer_map=layer_map, hidden=hidden, intermediate=intermediate, heads=heads,
        init=init, base=base, seed=seed, overwrite=overwrite, width_select=width_select,
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
