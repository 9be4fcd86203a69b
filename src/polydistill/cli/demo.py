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
    compress: bool = typer.Option(False, "--compress", help="then compress the demo's teacher for the sample's "
                                  "languages with a tiny budget (polydistill compress) and print its report card"),
    precision: str = opt.PRECISION_AUTO,
    threads: int | None = opt.THREADS,
) -> None:
    """Offline demo: teacher fine-tune → weight-copy student → KD → evaluation on seen and unseen languages."""
    from rich.console import Console

    from polydistill.cli.progress import grid_progress
    from polydistill.demo.pipeline import check_sample, run_demo

    opt.set_threads(threads)
    console = Console(stderr=True)
    check_sample()
    with grid_progress("demo", announce_runs=False) as (progress, on_event):
        result = run_demo(teacher, out, say=progress.console.print, on_event=on_event, quick=quick,
                          precision=precision)
    typer.echo(result.table_markdown)
    typer.echo(f"teacher used: {result.teacher} ({result.teacher_kind})")
    typer.echo("files: " + ", ".join(str(p) for p in result.files.values()))
    if compress:
        from polydistill.cli.progress import compress_progress
        from polydistill.demo.pipeline import compress_demo

        with compress_progress() as on_compress_event:
            compressed = compress_demo(out, quick=quick, precision=precision, say=console.print,
                                       on_event=on_compress_event)
        typer.echo(compressed.files["markdown"].read_text(encoding="utf-8"))
        typer.echo(f"compressed student: {compressed.model_dir} (int8: {compressed.int8_dir})")
    typer.echo(f"demo finished in {result.seconds:.0f} s; re-running with the same --out reuses finished runs.")


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)
