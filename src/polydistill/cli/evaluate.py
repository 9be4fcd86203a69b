"""``polydistill evaluate``: score a fine-tuned model per language, with the Table 6 baselines."""

from __future__ import annotations

from pathlib import Path

import typer


def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="Fine-tuned model directory (its id2label must name the dataset's labels)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="massive | tsm | universal-ner (uner) | a folder of your own data."),
    split: str = typer.Option("test", "--split", help="train | validation | test."),
    languages: str = typer.Option(
        "all", "--languages", "-l",
        help="all | seen | unseen | english | test-only (uner) | comma list of codes (e.g. sw-KE,de-DE or de_pud).",
    ),
    data_root: str | None = typer.Option(None, "--data-root", help="Folder holding the datasets (or $POLYDISTILL_DATA_ROOT); default: the HF hub."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the report as JSON here."),
    batch_size: int = typer.Option(64, "--batch-size", help="Examples per forward pass."),
    max_length: int = typer.Option(128, "--max-length", help="Maximum tokens per example."),
    random_runs: int = typer.Option(30, "--random-runs", help="Runs of the random NER baseline (000 Table 6: 30)."),
) -> None:
    """Overall and per-language F1 / accuracy / support, seen vs unseen, and the majority or random baseline."""
    from rich.console import Console

    from polydistill.data import load_task_data
    from polydistill.evaluate import evaluate_model
    from polydistill.evaluate.report import report_table, write_report

    data = load_task_data(dataset, languages, data_root=data_root, purpose="evaluate")
    report = evaluate_model(model, None, data, split=split, batch_size=batch_size, max_length=max_length,
                            random_runs=random_runs)
    console = Console()
    console.print(report_table(report))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if out is not None:
        write_report(report, out)
        console.print(f"report written to {out}")


def register(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate)
