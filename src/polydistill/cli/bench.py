"""``polydistill bench``: speed and size of models side by side (optionally each in several runtimes),
ratios against the first."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.errors import PolydistillError
from polydistill.io import atomic_write_json, check_output_path


def _parse_lengths(text: str) -> list[int]:
    try:
        lengths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise PolydistillError(f"--lengths must be comma-separated integers such as 32,128, got {text!r}.") from err
    if not lengths or any(n <= 0 for n in lengths):
        raise PolydistillError(f"--lengths must list positive integers such as 32,128, got {text!r}.")
    return lengths


def _fmt_ratio(value: float | None, suffix: str = "×") -> str:
    return "–" if value is None else f"{value:.2f}{suffix}"


def render_tables(report: dict, clock: str = "wall"):
    """Two rich tables (size, speed on ``clock``) from a report dict (as written to JSON)."""
    from rich.table import Table

    ratios = report["ratios"]
    size = Table(title=f"size (× = fraction of {report['baseline']})")
    for column in ("model", "L×H/FFN", "vocab", "params M", "emb M", "enc M", "disk MB", "params ×", "disk ×"):
        size.add_column(column, justify="left" if column == "model" else "right")
    for model in report["models"]:
        p, s, r = model["params"], model["shape"], ratios[model["name"]]
        size.add_row(
            model["name"], f"{s['layers']}×{s['hidden']}/{s['intermediate']}", f"{s['vocab']:,}",
            f"{p['total'] / 1e6:.2f}", f"{p['embedding'] / 1e6:.2f}", f"{p['encoder'] / 1e6:.2f}",
            f"{model['disk_bytes'] / 1e6:.1f}", _fmt_ratio(r["params"]), _fmt_ratio(r["disk"]),
        )
    machine = report.get("machine") or f"{report['settings']['machine']['torch_threads']} thread(s)"
    best = (report["settings"].get("baseline_best") or {}).get(clock)
    source = report["models"][0].get("source", report["baseline"])
    speed = Table(title=f"speed ({clock} clock), {machine}: median of {report['settings']['repeats']} interleaved runs; "
                        f"× = speed-up vs {report['baseline']}"
                        + (f"; best× = vs {source} in its fastest runtime of each case" if best else ""))
    speed.add_column("model")
    for key in report["cases"]:
        device, batch, length = key.split("/")
        unit = "ms" if batch == "b1" else "seq/s"
        speed.add_column(f"{device} {batch} {length}\n{unit}", justify="right")
    for model in report["models"]:
        cells = []
        for key in report["cases"]:
            timing = model["timings"][key]
            if timing["batch_size"] == 1:
                value = f"{timing['median_s'][clock] * 1e3:.1f}"
            else:
                value = f"{timing['sequences_per_s'][clock]:.1f}"
            ratio = _fmt_ratio(ratios[model['name']]['speedup'][clock].get(key))
            if best:
                vs_best = ratios[model["name"]].get("speedup_vs_baseline_best", {}).get(clock, {}).get(key)
                ratio += f" / {_fmt_ratio(vs_best, '× best')}"
            cells.append(f"{value} ({ratio})")
        speed.add_row(model["name"], *cells)
    if best:
        speed.add_row(f"{source} best runtime", *[best[key]["runtime"] if key in best else "–" for key in report["cases"]])
    return size, speed


def bench(
    models: list[Path] | None = typer.Argument(None, help="Model directories; the first is the baseline.",
                                               show_default=False),
    model: list[Path] | None = typer.Option(None, "--model", "-m", help="Model directory, as an option; repeat for more."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the full report (raw samples included) to this JSON file."),
    repeats: int = typer.Option(5, "--repeats", help="Timed runs per model and case; the median is reported."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed runs per model and case before timing."),
    lengths: str = typer.Option("32,128", "--lengths", help="Comma-separated sequence lengths."),
    batch_size: int = typer.Option(32, "--batch-size", help="Batch size of the throughput runs (latency uses 1)."),
    threads: int | None = opt.THREADS,
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cpu,cuda or auto (CPU plus CUDA when present)."),
    clock: str = typer.Option("wall", "--clock", help="Clock shown in the table: wall, or cpu (process CPU time, "
                              "steadier on a shared machine with --threads 1). The JSON holds both."),
    runtimes: str | None = typer.Option(
        None, "--runtimes", help="Measure every PyTorch model in each of these runtimes side by side (CPU): "
        "torch-fp32,torch-bf16,onnx-fp32,onnx-int8,openvino; ratios vs the first model in fp32 PyTorch and in "
        "its fastest runtime."),
) -> None:
    """Parameters, disk size, batch-1 latency and batch throughput of models, interleaved in one process."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers.utils import logging as hf_logging

    from polydistill.bench.measure import available_devices, bench_models, make_cases

    hf_logging.disable_progress_bar()  # our own progress bar is the one to watch
    model = [*(models or []), *(model or [])]
    if not model:
        raise PolydistillError("Pass at least one model directory (as arguments or with --model).")
    parsed = _parse_lengths(lengths)
    if clock not in ("wall", "cpu"):
        raise PolydistillError(f"--clock must be wall or cpu, got {clock!r}.")
    if out is not None:
        check_output_path(out, kind="file")
    console, err_console = Console(), Console(stderr=True)
    runtime_list = None
    if runtimes is not None:
        from polydistill.export.runtimes import parse_runtimes

        runtime_list = parse_runtimes(runtimes)
        if device not in ("auto", "cpu"):
            raise PolydistillError("bench --runtimes measures on the CPU; pass --device cpu.")
        device = "cpu"
    n_cases = len(make_cases(parsed, available_devices(device), batch_size))
    n_models = len(model) * len(runtime_list) + 1 if runtime_list else len(model)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("loading", total=n_models * n_cases * (repeats + warmup))

        def on_step(phase, case, name):
            progress.update(task, advance=1, description=f"{phase} {name} {case.key}")

        def on_load(name):
            progress.update(task, description=f"loading {name}")

        report = bench_models(model, lengths=parsed, batch_size=batch_size, repeats=repeats, warmup=warmup,
                              threads=threads, device=device, on_step=on_step, on_load=on_load, runtimes=runtime_list)
    data = report.to_dict()
    for table in render_tables(data, clock):
        console.print(table)
    if out is not None:
        atomic_write_json(out, data)
        console.print(f"report written to {out}")


def register(app: typer.Typer) -> None:
    app.command(name="bench")(bench)
