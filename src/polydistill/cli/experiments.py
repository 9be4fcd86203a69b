"""``polydistill grid run CONFIG`` and ``polydistill grid report DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

grid_app = typer.Typer(help="Experiment grids: run a YAML grid (resumable) and report its tables and plots.",
                       no_args_is_help=True)


@grid_app.command("run")
def run(
    config: Path = typer.Argument(..., help="grid YAML, e.g. configs/cpu/table1.yaml"),
    work_dir: Path | None = typer.Option(None, "--work-dir", "-w",
                                         help="results store (default: the config's work_dir or "
                                              "./polydistill-runs/<name>)"),
    report: bool = typer.Option(True, help="write the report when the grid finishes"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the runs and which are finished, run nothing"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads (overrides torch_threads)"),
    precision: str | None = typer.Option(None, "--precision", help="auto | fp32 | bf16 | fp16 for every cell "
                                         "(overrides the config's teacher_training / student_training)."),
    only: list[str] | None = typer.Option(None, "--only", help="run only cells whose id or label contains this "
                                          "(repeatable; their teachers are included)"),
) -> None:
    """Run every unfinished cell of a grid; kill it any time, re-running continues."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from polydistill.experiments.grid import expand
    from polydistill.experiments.runner import default_work_dir, run_grid
    from polydistill.experiments.schema import load_config
    from polydistill.experiments.store import open_store

    console = Console(stderr=True)
    cfg = load_config(config)
    if threads:
        cfg = cfg.model_copy(update={"torch_threads": threads})
    if precision:
        from polydistill.experiments.schema import parse_config

        data = cfg.model_dump(mode="json")
        for role in ("teacher_training", "student_training"):
            data[role]["precision"] = precision
        cfg = parse_config(data, source=str(config))
    out = work_dir or default_work_dir(cfg)
    if dry_run:
        store = open_store(out)
        for spec in expand(cfg):
            mark = "done" if store.has(spec.run_id) else "todo"
            typer.echo(f"{mark}  {spec.run_id}  {spec.label}")
        return
    with Progress(TextColumn("[bold]grid[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(cfg.name, total=None)

        def on_event(kind, spec, index, total):
            progress.update(task, total=total)
            if kind == "fail":
                progress.console.print(f"[red]failed[/] {spec.label} (see {out / 'failed'})")
            if kind == "start":
                progress.update(task, description=f"{cfg.name}: {spec.label}")
                progress.console.print(f"[cyan]run {index + 1}/{total}[/] {spec.run_id}  {spec.label}")
            else:
                progress.advance(task)

        summary = run_grid(cfg, out, on_event=on_event, only=only or None)
    typer.echo(f"grid {cfg.name}: {len(summary.finished)} run(s) finished now, {summary.skipped} already done, "
               f"{summary.total} total, {summary.seconds:.0f} s; results in {summary.work_dir}")
    if report:
        _report(summary.work_dir, None)


def _report(work_dir: Path, out: Path | None) -> None:
    from polydistill.experiments.report import write_report

    written = write_report(work_dir, out)
    for key, path in written.items():
        if key == "markdown" or key.endswith("/markdown"):  # one per grid when a work dir holds several
            typer.echo(Path(path).read_text(encoding="utf-8"))
    typer.echo("written: " + ", ".join(str(p) for p in written.values()))


@grid_app.command("report")
def report(
    work_dir: Path = typer.Argument(..., help="work dir of a grid run"),
    out: Path | None = typer.Option(None, "--out", "-o", help="output folder (default: WORK_DIR/report)"),
) -> None:
    """Tables (Markdown, CSV, LaTeX; mean ± std over seeds) and PNG plots of the finished runs."""
    _report(work_dir, out)


def register(app: typer.Typer) -> None:
    app.add_typer(grid_app, name="grid")
