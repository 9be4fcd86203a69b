"""The progress display of grids (and the demo, which is a grid): one bar over the runs, and one over
the current run's optimiser steps with its ETA."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def grid_progress(title: str, failed_dir: Path | None = None, announce_runs: bool = True) -> Iterator:
    """Yields ``(progress, on_event)`` for ``run_grid(on_event=...)``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.fields[kind]}[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True)) as progress:
        runs = progress.add_task(title, total=None, kind="grid")
        steps = progress.add_task("", total=None, kind="run", visible=False)

        def on_event(kind, spec, index, total):
            if kind == "step":  # index = optimiser step, total = the run's max steps
                progress.update(steps, completed=index, total=total, visible=True)
                return
            progress.update(runs, total=total)
            if kind == "fail":
                progress.console.print(f"[red]failed[/] {spec.label}" + (f" (see {failed_dir})" if failed_dir else ""))
            if kind == "start":
                progress.update(runs, description=spec.label)
                progress.reset(steps, total=None, visible=False, description=spec.label)
                if announce_runs:
                    progress.console.print(f"[cyan]run {index + 1}/{total}[/] {spec.run_id}  {spec.label}")
            else:
                progress.advance(runs)
                progress.update(steps, visible=False)

        yield progress, on_event
