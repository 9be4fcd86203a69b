"""``polydistill compress``: a fine-tuned teacher → a deployable student for the named languages, with a
report card (logic in polydistill.compress)."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.compress.plan import CompressSettings, CompressTraining
from polydistill.io import atomic_write_json

# Every flag is derived from a field (name, aliases, default, help; bounds checked by pydantic):
# CompressSettings' fields but the teacher (the MODEL argument or --model), the KD hyper-parameters
# (Training's fields with compress' defaults; a new head's recipe does not apply) and the library's progress switch.
_SETTINGS = opt.settings_options(CompressSettings, exclude={"teacher", "training", "progress"})
_TRAINING = opt.settings_options(CompressTraining, exclude={"head_init", "head_lr_multiplier"})


@opt.with_settings(("values", _SETTINGS), ("training", _TRAINING))
def compress_command(
    teacher: str | None = opt.MODEL_ARGUMENT,
    model_option: str | None = opt.MODEL_OPTION,
    *,
    values: dict,  # the settings groups, filled in by opt.with_settings
    training: dict,
) -> None:
    """Compress a fine-tuned teacher into a deployable student for the languages you name.

    Stages (each kept under OUT/stages/, resumable by re-running the same command): plan → vocabulary
    reduction → depth copy → width selection → KD → int8 export → evaluation of the teacher and every
    intermediate student → bench; then OUT/model, OUT/model-int8, OUT/report.md, OUT/report.json, plots.
    With --prune-rounds N the depth copy, width selection and KD run once per round, each from the previous
    round's student (iterative prune-and-distil).
    """
    from polydistill.cli.progress import compress_progress
    from polydistill.compress import compress

    opt.set_threads(values["threads"])
    source = opt.one_model(teacher, model_option, "teacher")
    training_settings = opt.validated(CompressTraining, training, "training settings")
    settings = opt.validated(CompressSettings, {**values, "teacher": source, "training": training_settings},
                             "compress settings")
    with compress_progress() as on_event:
        result = compress(settings, on_event=on_event)
    typer.echo(result.files["markdown"].read_text(encoding="utf-8"))
    typer.echo("files: " + ", ".join(str(p) for p in (result.model_dir, result.int8_dir, *result.files.values())))
    redone = [s for s in result.stages if s not in result.resumed]
    typer.echo(f"compress finished in {result.seconds:.0f} s"
               + (f" (resumed: {', '.join(result.resumed)} were done before)" if result.resumed and redone else "")
               + ("; nothing to redo: every stage was done before" if not redone else "") + ".")


def compress_seeds_command(
    runs: list[Path] = typer.Argument(..., help="The --out directories of finished compress runs: one command "
                                      "run with different --seed."),
    model: str = typer.Option("int8", "--model", help="The student to score: int8 (the deployable export), kd "
                              "(the PyTorch student after KD) or an intermediate one (vocab, depth, width)."),
    resamples: int = typer.Option(1000, "--resamples", min=1, help="Bootstrap resamples of the intervals."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the numbers to this JSON file."),
    against: list[Path] | None = typer.Option(None, "--against", help="Compare recipes instead: the runs given "
                                              "(recipe A) minus these runs of another recipe of the same teacher "
                                              "(B; repeat the flag per run), paired over the test examples."),
) -> None:
    """Retention over seeds: the seed-averaged student F1 ÷ the teacher's F1 of several compress runs of one
    teacher, with a 95 % paired-bootstrap interval per group (seen / unseen / all), against their targets.
    With --against: the F1 difference of two recipes (A − B) with its paired interval."""
    from polydistill.compress.seeds import (
        recipe_difference,
        render_difference,
        render_markdown,
        seeds_retention,
    )

    if against:
        result = recipe_difference(runs, against, model=model, resamples=resamples)
        typer.echo(render_difference(result))
    else:
        result = seeds_retention(runs, model=model, resamples=resamples)
        typer.echo(render_markdown(result))
    if json_out is not None:
        atomic_write_json(json_out, result)
        typer.echo(f"numbers: {json_out}")


def register(app: typer.Typer) -> None:
    app.command(name="compress")(compress_command)
    app.command(name="compress-seeds")(compress_seeds_command)
