"""``polydistill evaluate``: score a fine-tuned model per language, with the Table 6 baselines."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.io import check_output_path


def evaluate(
    model: str | None = typer.Argument(None, help="Fine-tuned model directory (its id2label must name the dataset's "
                                       "labels).", show_default=False),
    model_option: str | None = opt.MODEL_OPTION,
    dataset: str = opt.DATASET,
    split: str = typer.Option("test", "--split", help="train | validation | test."),
    languages: str = typer.Option(
        "all", "--languages", "-l",
        help="all | seen | unseen | english | test-only (uner) | comma list of codes (e.g. sw-KE,de-DE or de_pud).",
    ),
    data_root: str | None = opt.DATA_ROOT,
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the report as JSON here."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Examples per forward pass."),
    max_length: int = typer.Option(128, "--max-length", min=8, help="Maximum tokens per example."),
    random_runs: int = typer.Option(30, "--random-runs", min=1, help="Runs of the random NER baseline (Wibowo et al. 2024, ACL Table 6: 30)."),
    threads: int | None = opt.THREADS,
) -> None:
    """Overall and per-language F1 / accuracy / support, seen vs unseen, and the majority or random baseline.

    Seen / unseen are the languages the model was trained on (read from its run.json) and the others;
    a model without a training record is grouped by the paper's partition."""
    from rich.console import Console

    from polydistill.data import load_task_data
    from polydistill.evaluate import evaluate_model
    from polydistill.evaluate.report import report_table, write_report

    opt.set_threads(threads)
    source = opt.one_model(model, model_option)
    if out is not None:
        check_output_path(out, kind="file")  # before the minutes of inference
    data = load_task_data(dataset, languages, data_root=data_root, purpose="evaluate")
    report = evaluate_model(source, None, data, split=split, batch_size=batch_size, max_length=max_length,
                            random_runs=random_runs, progress=True)
    console = Console()
    console.print(report_table(report))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if out is not None:
        write_report(report, out)
        console.print(f"report written to {out}")


def register(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate)
