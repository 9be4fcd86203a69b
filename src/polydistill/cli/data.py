"""``polydistill data show``: what a dataset / language selection resolves to, with counts."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Inspect datasets, language partitions and subsets.", no_args_is_help=True)


@data_app.command(name="show")
def show(
    dataset: str = typer.Argument(..., help="massive | tsm | universal-ner (uner) | a folder of your own data."),
    languages: str = typer.Option("all", "--languages", "-l", help="all | seen | unseen | english | codes."),
    data_root: str | None = typer.Option(None, "--data-root", help="Folder holding the datasets (or $POLYDISTILL_DATA_ROOT)."),
    fraction: float | None = typer.Option(None, "--fraction", help="Stratified train subset, e.g. 0.01 for 1 %."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subset."),
    purpose: str = typer.Option("evaluate", "--purpose", help="train (refuses test-only languages) | evaluate."),
    allow_prerelease: bool = typer.Option(False, "--allow-prerelease", help="UNER: use the pre-release en_ewt train file (not UNER v1)."),
) -> None:
    """Print examples per split and language, and the label set."""
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from polydistill.data import load_task_data

    data = load_task_data(dataset, languages, data_root=data_root, fraction=fraction, seed=seed, purpose=purpose,
                          allow_prerelease=allow_prerelease)
    table = Table(title=f"{data.name} ({data.task}, {data.num_labels} labels) from {data.source}")
    table.add_column("language")
    for split in data.splits:
        table.add_column(split, justify="right")
    counts = {split: Counter(ds["language"]) for split, ds in data.splits.items()}
    for lang in data.languages:
        note = " (test-only)" if lang in data.test_only_languages else ""
        table.add_row(lang + note, *(str(counts[split].get(lang, 0)) for split in data.splits))
    table.add_section()
    table.add_row("total", *(str(len(ds)) for ds in data.splits.values()), style="bold")
    console = Console()
    console.print(table)
    console.print(f"labels: {' '.join(data.label_names)}")
    for warning in data.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
