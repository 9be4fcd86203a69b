"""``polydistill data show``: what a dataset / language selection resolves to, with counts."""

from __future__ import annotations

from collections import Counter

import typer

from polydistill.cli import options as opt
from polydistill.data.languages import iso_language
from polydistill.data.load import get_adapter

data_app = typer.Typer(help="Inspect datasets, language partitions and subsets.", no_args_is_help=True)


@data_app.command(name="show")
def show(
    dataset: str = typer.Argument(..., help="massive | massive-slots | tsm | universal-ner (uner) | a folder of your own data."),
    languages: str = typer.Option("all", "--languages", "-l", help="all | seen | unseen | english | codes."),
    data_root: str | None = opt.DATA_ROOT,
    fraction: float | None = opt.FRACTION,
    seed: int = opt.SEED,
    purpose: str = typer.Option("evaluate", "--purpose", help="train (refuses test-only languages) | evaluate."),
    allow_prerelease: bool = typer.Option(False, "--allow-prerelease", help="UNER: use the pre-release en_ewt train file (not UNER v1)."),
) -> None:
    """Count the examples per split and language, and show the label set."""
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


@data_app.command(name="languages")
def languages_command(
    dataset: str = typer.Argument(..., help="massive | massive-slots | tsm | universal-ner (uner)."),
) -> None:
    """The language codes a dataset accepts, its ISO code, and the paper's partitions (Wibowo et al. 2024, ACL Table 11)."""
    from rich.console import Console
    from rich.table import Table

    adapter = get_adapter(dataset)
    named = {name: set(codes) for name, codes in adapter.named.items() if name != "all"}
    table = Table(title=f"{adapter.name}: {len(adapter.valid)} language codes",
                  caption="--languages takes codes (comma-separated) or a partition name")
    table.add_column("code")
    table.add_column("ISO")
    table.add_column("partitions")
    for code in adapter.valid:
        parts = [name for name, codes in named.items() if code in codes]
        table.add_row(code, iso_language(code) or "–", ", ".join(parts) or "–")
    console = Console()
    console.print(table)
    console.print("partitions: " + "; ".join(f"{name} ({len(codes)})" for name, codes in adapter.named.items()))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
