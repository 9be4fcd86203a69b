"""``polydistill grid run CONFIG`` and ``polydistill grid report DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.errors import PolydistillError

grid_app = typer.Typer(help="Experiment grids: run a YAML grid (resumable) and report its tables and plots.",
                       no_args_is_help=True)


@grid_app.command("run")
def run(
    config: Path = typer.Argument(..., help="grid YAML, or a built-in config by name (cpu/table1_all_languages, "
                                  "paper/table1_all_languages)"),
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
    backend: str = typer.Option("sequential", "--backend",
                                help="sequential: one cell after the other in this process; ray: every cell a Ray "
                                "task (pip install 'polydistill\\[ray]'; docs/scaling.md)"),
    address: str | None = typer.Option(None, "--address", help="with --backend ray: a running Ray cluster (auto, "
                                       "HOST:6379, ray://HOST:10001); default: a local cluster on this machine"),
    workers: int | None = typer.Option(None, "--workers", min=1, help="with --backend ray and no --address: cells "
                                       "at a time on the local cluster (default: cores / --cpus-per-cell)"),
    cpus_per_cell: float = typer.Option(1.0, "--cpus-per-cell", min=0.01, help="with --backend ray: CPUs each "
                                        "cell reserves (its torch threads, unless --threads)"),
    gpus_per_cell: float = typer.Option(0.0, "--gpus-per-cell", min=0.0, help="with --backend ray: GPUs each cell "
                                        "reserves (0.5: two cells share a GPU)"),
) -> None:
    """Run every unfinished cell of a grid; kill it any time, re-running continues."""
    from polydistill.experiments.grid import expand
    from polydistill.experiments.runner import default_work_dir, run_grid
    from polydistill.experiments.schema import load_config
    from polydistill.experiments.store import open_store

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
    if backend not in ("sequential", "ray"):
        raise PolydistillError(f"--backend {backend} is not a backend; use sequential or ray.")
    ray_flags = {"--address": address, "--workers": workers, "--cpus-per-cell": cpus_per_cell != 1.0 or None,
                 "--gpus-per-cell": gpus_per_cell or None}
    if backend == "ray":
        from polydistill.cli.progress import pool_progress
        from polydistill.experiments.ray_backend import RaySettings, check, run_grid_ray

        settings = RaySettings(address=address, workers=workers, cpus_per_cell=cpus_per_cell,
                               gpus_per_cell=gpus_per_cell)
        check(settings)  # Ray missing, contradicting flags: one sentence before any display
        with pool_progress(cfg.name, Path(out) / "failed") as on_event:
            summary = run_grid_ray(cfg, out, on_event=on_event, only=only or None, settings=settings)
    elif given := [flag for flag, value in ray_flags.items() if value is not None]:
        raise PolydistillError(f"{', '.join(given)} only apply to --backend ray; add --backend ray or drop them.")
    else:
        from polydistill.cli.progress import grid_progress

        with grid_progress(cfg.name, Path(out) / "failed") as (_, on_event):
            summary = run_grid(cfg, out, on_event=on_event, only=only or None)
    typer.echo(f"grid {cfg.name}: {len(summary.finished)} run(s) finished now, {summary.skipped} already done, "
               f"{summary.total} total, {summary.seconds:.0f} s; results in {summary.work_dir}")
    if report:
        _report(summary.work_dir, None)


def _report(work_dir: Path, out: Path | None, resamples: int | None = None, seed: int | None = None) -> None:
    from polydistill.experiments.report import write_report

    written = write_report(work_dir, out, resamples=resamples, seed=seed)
    for key, path in written.items():
        if key == "markdown" or key.endswith("/markdown"):  # one per grid when a work dir holds several
            typer.echo(Path(path).read_text(encoding="utf-8"))
    typer.echo("written: " + ", ".join(str(p) for p in written.values()))


@grid_app.command("report")
def report(
    work_dir: Path = typer.Argument(..., help="work dir of a grid run, or a results store such as results/cpu "
                                    "(only results/*.json and grids/*.json are read)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="output folder (default: WORK_DIR/report)"),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="bootstrap resamples of the claims table "
                                  "(0: no claims table)"),
    seed: int = typer.Option(0, "--bootstrap-seed", help="seed of the bootstrap resamples"),
    update_docs: Path | None = typer.Option(None, "--update-docs", help="rewrite the <!-- polydistill:begin NAME "
                                            "--> blocks of this Markdown file (e.g. docs/reproduction.md) from "
                                            "the report: NAME = a grid (its table), GRID:claims, GRID:teachers or "
                                            "paper-claims"),
    check_docs: Path | None = typer.Option(None, "--check-docs", help="exit 1 when a block of this Markdown file "
                                           "differs from the report (writes nothing there)"),
) -> None:
    """Tables (Markdown, CSV, LaTeX; mean ± std over seeds), the claims table (paired-bootstrap 95 % CIs)
    and PNG plots of the finished runs."""
    from polydistill.experiments import report as rep
    from polydistill.reporting.docs import docs_drift
    from polydistill.reporting.docs import update_docs as update_docs_file

    _report(work_dir, out, resamples, seed)
    if update_docs is None and check_docs is None:
        return
    blocks = rep.report_blocks(work_dir, resamples, seed)
    if update_docs is not None:
        updated, missing = update_docs_file(update_docs, blocks)
        typer.echo(f"{update_docs}: updated {len(updated)} block(s)" + (f" ({', '.join(updated)})" if updated else ""))
        for name in missing:
            typer.echo(f"{update_docs}: block {name!r} left as it is: the report has no such grid "
                       f"(report blocks: {', '.join(blocks) or 'none'}).", err=True)
    if check_docs is not None:
        if not check_docs.is_file():
            raise PolydistillError(f"{check_docs} does not exist; pass the Markdown file with the polydistill blocks.")
        problems = docs_drift(check_docs.read_text(encoding="utf-8"), blocks, str(check_docs))
        for line in problems:
            typer.echo(line, err=True)
        if problems:
            raise typer.Exit(1)
        typer.echo(f"{check_docs}: every polydistill block matches the report.")


def register(app: typer.Typer) -> None:
    app.add_typer(grid_app, name="grid")
