"""``polydistill demo``: the offline quickstart (see polydistill.demo.pipeline)."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt


def demo(
    teacher: str | None = typer.Option(None, "--teacher", help="teacher to fine-tune: a model dir or hub id "
                                       "(default: a small encoder trained from scratch on the sample)"),
    out: Path = typer.Option(Path("polydistill-demo"), "--out", "-o", help="output folder (re-running resumes)"),
    quick: bool = typer.Option(False, "--quick", help="2 epochs per stage (a smoke test; the teacher gate is off)"),
    precision: str = opt.PRECISION_AUTO,
    threads: int | None = opt.THREADS,
) -> None:
    """Offline demo: teacher fine-tune → weight-copy student → KD → evaluation on seen and unseen languages."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from polydistill.demo.pipeline import check_sample, run_demo

    opt.set_threads(threads)
    console = Console(stderr=True)
    check_sample()
    with Progress(TextColumn("[bold]demo[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("starting", total=None)

        def on_event(kind, spec, index, total):
            progress.update(task, total=total)
            if kind == "start":
                progress.update(task, description=spec.label)
            else:
                progress.advance(task)

        result = run_demo(teacher, out, say=progress.console.print, on_event=on_event, quick=quick,
                          precision=precision)
    typer.echo(result.table_markdown)
    typer.echo(f"teacher used: {result.teacher} ({result.teacher_kind})")
    typer.echo("files: " + ", ".join(str(p) for p in result.files.values()))
    typer.echo(f"demo finished in {result.seconds:.0f} s; re-running with the same --out reuses finished runs.")


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)
