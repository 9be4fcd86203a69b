"""``polydistill finetune`` and ``polydistill distill``: training commands (logic in polydistill.distill).

Their training and KD flags are derived from ``TrainSettings`` / ``KDSettings`` (cli/options.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.data.load import load_capped_task_data
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.errors import PolydistillError, require
from polydistill.student.build import build_student

_RUN_ONLY = {"progress", "cache_dir", "save_total_limit"}
_TRAINING = opt.with_precision_aliases(opt.settings_options(TrainSettings, exclude=_RUN_ONLY))
_KD = opt.settings_options(KDSettings, exclude={"weights"}) + opt.kd_weight_options()


def _train_settings(values: dict) -> TrainSettings:
    return opt.validated(TrainSettings, opt.without_unset_aliases(values), "training settings")


def _load(dataset, languages, data_root, fraction, seed, max_dev: int):
    def said(_split: str, before: int, after: int) -> None:
        if opt.in_main_process():
            typer.echo(f"dev: {after} of {before} validation examples (at most {max_dev} "
                       "per language; --max-dev-per-language 0 uses all)", err=True)

    return load_capped_task_data(dataset, languages=languages, data_root=data_root, fraction=fraction, seed=seed,
                                 max_dev_per_language=max_dev, on_cap=said)


def _report(result, what: str) -> None:
    if not opt.in_main_process():
        return
    if result.already_done:
        typer.echo(f"nothing to do: {result.output_dir} already holds this run ({what}, best dev F1 "
                   f"{_f1(result)}); pass --overwrite to train it again.")
        return
    typer.echo(f"{what}: best dev F1 {_f1(result)}, {result.global_step} steps in {result.train_seconds:.0f} s; "
               f"model saved to {result.output_dir}")


def _warn_if_weak(result, data) -> None:
    """The teacher gate's verdict, said right away (distill would refuse this model as a teacher)."""
    from polydistill.evaluate.gate import weak_teacher_reason

    reason = weak_teacher_reason(result.best_dev_f1, data)
    if reason and opt.in_main_process():
        typer.echo(f"warning: this model is too weak to be a teacher: {reason}.", err=True)


def _f1(result) -> str:
    return "n/a" if result.best_dev_f1 is None else f"{100 * result.best_dev_f1:.2f}"


@opt.with_settings(("training", _TRAINING))
def finetune_command(
    model: str | None = opt.MODEL_ARGUMENT, model_option: str | None = opt.MODEL_OPTION,
    dataset: str = opt.DATASET, languages: str = opt.LANGUAGES, data_root: Path | None = opt.DATA_ROOT,
    fraction: float | None = opt.FRACTION, max_dev_per_language: int = opt.MAX_DEV, threads: int | None = opt.THREADS,
    *, training: dict,  # filled in by opt.with_settings
) -> None:
    """Fine-tune a teacher (or a student without KD) with best-dev-F1 checkpointing and resume."""
    opt.set_threads(threads)
    from polydistill.distill.finetune import finetune

    source = opt.one_model(model, model_option)
    settings = _train_settings(training)
    task_data = _load(dataset, languages, data_root, fraction, settings.seed, max_dev_per_language)
    result = finetune(source, task_data, settings)
    _report(result, "fine-tuned")
    _warn_if_weak(result, task_data)


@opt.with_settings(("training", _TRAINING), ("kd_values", _KD))
def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="Fine-tuned teacher: model directory or hub id."),
    student: str | None = typer.Option(None, "--student", help="Student directory (polydistill student); "
                                       "omit to build one on the fly with --layers/--hidden/--init ..."),
    layers: int | None = typer.Option(None, "--layers", help="On-the-fly student depth (default: half the teacher's)."),
    student_layer_map: str = typer.Option("alternate-last", "--student-layer-map", help="Copy map of the on-the-fly student."),
    hidden: int | None = typer.Option(None, "--hidden"), intermediate: int | None = typer.Option(None, "--intermediate"),
    heads: int | None = typer.Option(None, "--heads"),
    init: str = typer.Option("from-teacher", "--init", help="from-teacher | from-base | from-scratch."),
    base: str | None = typer.Option(None, "--base", help="Pretrained checkpoint for --init from-base."),
    dataset: str = opt.DATASET, languages: str = opt.LANGUAGES, data_root: Path | None = opt.DATA_ROOT,
    fraction: float | None = opt.FRACTION, max_dev_per_language: int = opt.MAX_DEV, threads: int | None = opt.THREADS,
    unlabelled_data: str | None = typer.Option(
        None, "--unlabelled-data", help="Teacher-labelled augmentation: DATASET:LANGUAGES (their train inputs, "
        "e.g. massive:it-IT,nl-NL) or a text/JSONL file ([LANG=]FILE); counts in the KD terms only, never in CE."),
    unlabelled_max: int | None = typer.Option(None, "--unlabelled-max", min=1,
                                              help="Use at most N unlabelled examples (a fixed sample)."),
    stages: str | None = typer.Option(None, "--stages", help="depth,width: distil a full-width --layers student "
                                      "first, then select --hidden by importance on it and distil again (half the "
                                      "step budget each)."),
    *, training: dict, kd_values: dict,  # filled in by opt.with_settings
) -> None:
    """TinyBERT-style KD (att + hid + emb + pred + CE, or any registered terms) of a fine-tuned teacher."""
    opt.set_threads(threads)
    from polydistill.distill.kd import distill

    builds = {"--layers": layers, "--hidden": hidden, "--intermediate": intermediate, "--heads": heads,
              "--base": base, "--init": None if init == "from-teacher" else init,
              "--student-layer-map": None if student_layer_map == "alternate-last" else student_layer_map}
    given = [flag for flag, value in builds.items() if value is not None]
    require(student is None or not given, f"{', '.join(given)} shape{'s' if len(given) == 1 else ''} an on-the-fly "
            "student and would be ignored with --student; drop "
            f"{'it' if len(given) == 1 else 'them'}, or drop --student.")
    require(unlabelled_max is None or unlabelled_data,
            "--unlabelled-max caps --unlabelled-data; give the unlabelled data too, or drop --unlabelled-max.")
    settings = _train_settings(training)
    weights = opt.kd_weights(kd_values)
    kd = opt.validated(KDSettings, {"weights": weights, **{k: v for k, v in kd_values.items()
                                                            if not k.startswith("w_") and k != "kd_term"}},
                       "KD settings")
    task_data = _load(dataset, languages, data_root, fraction, settings.seed, max_dev_per_language)
    unlabelled = None
    if unlabelled_data:
        from polydistill.data.unlabelled import load_unlabelled

        unlabelled = load_unlabelled(unlabelled_data, task_data.task, data_root, unlabelled_max, settings.seed)
    if stages is not None:
        from polydistill.distill.stages import distill_in_stages

        if stages.replace(" ", "") != "depth,width" or student is not None or not (layers and hidden):
            raise PolydistillError("--stages takes depth,width, with --layers and --hidden and without --student.")
        _report(distill_in_stages(teacher, task_data, settings, kd, layers=layers, hidden=hidden,
                                  intermediate=intermediate, heads=heads, layer_map=student_layer_map,
                                  unlabelled=unlabelled), "distilled")
        return
    if student is None:
        from polydistill.modeling import load_config

        n_layers = layers or max(1, load_config(teacher).num_hidden_layers // 2)
        built = build_student(teacher, layers=n_layers, layer_map=student_layer_map, hidden=hidden,
                              intermediate=intermediate, heads=heads, init=init, base=base, seed=settings.seed)
        _report(distill(teacher, built, task_data, settings, kd, unlabelled=unlabelled), "distilled")
        return
    _report(distill(teacher, student, task_data, settings, kd, unlabelled=unlabelled), "distilled")


def register(app: typer.Typer) -> None:
    app.command(name="finetune")(finetune_command)
    app.command(name="distill")(distill_command)
