"""The progress displays of grids (and the demo, which is a grid) and of compress: one bar over the runs or stages,
and one over the current training's optimiser steps with its ETA."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from polydistill.logs import interactive


def _bars(*extra_columns, transient: bool = False):
    """The rich Progress every polydistill display uses (on stderr, so a redirected stdout stays clean):
    kind, description, bar, n of m, elapsed, remaining, then ``extra_columns``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.fields[kind]}[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), *[TextColumn(c) for c in extra_columns],
                    console=Console(stderr=True), transient=transient)


def _log_step(progress, step: int, total: int | None, what: str = "") -> None:
    """Without a terminal no bar is drawn: a plain line every tenth of the steps says how far training is."""
    if not interactive() and total and step % max(1, total // 10) == 0:
        progress.console.print(f"  {what}step {step}/{total}")


@contextlib.contextmanager
def grid_progress(title: str, failed_dir: Path | None = None, announce_runs: bool = True) -> Iterator:
    """Yields ``(progress, on_event)`` for ``run_grid(on_event=...)``."""
    with _bars() as progress:
        runs = progress.add_task(title, total=None, kind="grid")
        steps = progress.add_task("", total=None, kind="run", visible=False)

        def on_event(kind, spec, index, total):
            if kind == "step":  # index = optimiser step, total = the run's max steps
                progress.update(steps, completed=index, total=total, visible=True)
                _log_step(progress, index, total)
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


@contextlib.contextmanager
def pool_progress(title: str, failed_dir: Path | None = None) -> Iterator:
    """Yields ``on_event`` for a grid whose cells run side by side (``grid run --backend ray``): one bar over
    the cells with the time remaining, and how many are running and failed; a line per finished cell."""
    with _bars("{task.fields[state]}") as progress:
        cells = progress.add_task(title, total=None, kind="grid", state="")
        running: set[str] = set()
        counts = {"done": 0, "fail": 0, "skip": 0}

        def on_event(kind, spec, index, total):
            progress.update(cells, total=total)
            if kind == "start":
                running.add(spec.run_id)
            elif kind in counts:
                running.discard(spec.run_id)
                counts[kind] += 1
                progress.advance(cells)
                finished = sum(counts.values())
                if kind == "done":
                    progress.console.print(f"[green]done[/] {finished}/{total} {spec.label}")
                elif kind == "fail":
                    progress.console.print(f"[red]failed[/] {spec.label}" + (f" (see {failed_dir})" if failed_dir else ""))
            failed = f", [red]{counts['fail']} failed[/]" if counts["fail"] else ""
            progress.update(cells, state=f"{len(running)} running{failed}")

        yield on_event


def compress_progress():
    """A rich progress display for compress' events: the stages (n of 8, elapsed; KD's budget estimate) and,
    while KD trains, its optimiser steps with the time remaining."""
    @contextlib.contextmanager
    def display():
        with _bars("{task.fields[eta]}", transient=True) as progress:  # the finished stages stay printed, the bars go
            stages = progress.add_task("starting", total=None, eta="", kind="compress")
            steps = progress.add_task("KD steps", total=None, eta="", kind="kd", visible=False)

            def on_event(event: dict) -> None:
                kind, stage = event["kind"], event.get("stage")
                if kind == "step":
                    progress.update(steps, completed=event["step"], total=event["steps"], visible=True)
                    _log_step(progress, event["step"], event["steps"], "KD ")
                    return
                progress.update(stages, total=event["total"])
                label = f"{event['index']}-{stage}" if stage else ""
                if kind == "note":
                    progress.console.print(f"  {event['message']}", style="dim")
                elif kind == "skip":
                    progress.console.print(f"  {label}: done before ({event['seconds']:.0f} s), kept")
                    progress.advance(stages)
                elif kind == "start":
                    eta = event.get("eta_s")
                    finish = time.strftime("%H:%M", time.localtime(time.time() + eta)) if eta else ""
                    progress.update(stages, description=label,
                                    eta=f"ETA {finish} (≈ {eta / 60:.1f} min, fitted to the budget)" if eta else "")
                elif kind == "done":
                    progress.console.print(f"  {label}: done in {event['seconds']:.0f} s")
                    progress.update(stages, eta="")
                    progress.update(steps, visible=False)
                    progress.advance(stages)

            yield on_event

    return display()
