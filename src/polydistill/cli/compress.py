"""``polydistill compress``: a fine-tuned teacher → a deployable student for the named languages, with a
report card (logic in polydistill.compress)."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.compress.plan import CompressTraining

# KD hyper-parameters: Training's fields (with compress' defaults); a new head's recipe does not apply
_TRAINING = opt.settings_options(CompressTraining, exclude={"head_init", "head_lr_multiplier"})


@opt.with_settings(("training", _TRAINING))
def compress_command(
    teacher: str | None = opt.MODEL_ARGUMENT,
    model_option: str | None = opt.MODEL_OPTION,
    dataset: str = opt.DATASET,
    languages: str = opt.LANGUAGES,
    unseen_languages: str | None = typer.Option(None, "--unseen-languages", help="Languages reported separately "
                                                "(zero-shot: never trained on; their vocabulary is kept), comma list."),
    data_root: str | None = opt.DATA_ROOT,
    out: Path = opt.OUT,
    size: str | None = typer.Option(None, "--size", help="tiny | small | base (scaled from the teacher; e5-small: "
                                    "4×192/768, 6×192/768, 6×384/1536). Default: small unless sizes or "
                                    "--target-speedup are given."),
    layers: int | None = typer.Option(None, "--layers", min=1, help="Student depth (replaces the preset's)."),
    hidden: int | None = typer.Option(None, "--hidden", min=1, help="Student hidden size (a multiple of the "
                                      "teacher's head count; the heads are kept)."),
    intermediate: int | None = typer.Option(None, "--intermediate", min=1, help="Student FFN size (default: "
                                            "scaled with --hidden)."),
    layer_map: str = typer.Option("alternate-last", "--layer-map", help="Which teacher layers the depth copy takes: "
                                  "alternate-last (the paper's), alternate-first, first, last, 0,5,11, or importance."),
    width_select: str = typer.Option("importance", "--width-select", help="importance | uniform (hidden / FFN "
                                     "selection when the width shrinks)."),
    calibration_size: int = typer.Option(256, "--calibration-size", min=1, help="Training examples that score "
                                         "importance."),
    vocab_coverage: float | None = typer.Option(None, "--vocab-coverage", help="Held-out token coverage each "
                                                "language's vocabulary must reach (default 0.99, or the most the "
                                                "sources reach)."),
    wordfreq: bool = typer.Option(True, "--wordfreq/--no-wordfreq", help="Add the wordfreq word list of each "
                                  "language that has one to the vocabulary sources."),
    wordfreq_words: int = typer.Option(50_000, "--wordfreq-words", min=1, help="Top words per wordfreq list."),
    target_speedup: float | None = typer.Option(None, "--target-speedup", help="Pick the largest student whose "
                                                "measured throughput speed-up over the teacher reaches N."),
    speedup_on: str = typer.Option("int8", "--speedup-on", help="int8 | fp32: the form of the candidates "
                                   "--target-speedup measures (int8 = the deployable)."),
    speedup_repeats: int = typer.Option(3, "--speedup-repeats", min=1, help="Timed repeats per candidate."),
    budget_minutes: float | None = typer.Option(None, "--budget-minutes", help="Fit the number of KD steps to "
                                                "this many minutes of KD (training + dev evaluations), from a "
                                                "measured step time."),
    kd_term: list[str] | None = typer.Option(None, "--kd-term", help="NAME=WEIGHT overriding a KD term's weight "
                                             "(default: att, hid, emb, pred, ce = 1; rel = 1 when the width changes)."),
    unlabelled_data: str | None = typer.Option(
        None, "--unlabelled-data", help="Teacher-labelled augmentation: DATASET:LANGUAGES (their train inputs, "
        "e.g. massive:it-IT,nl-NL) or a text/JSONL file ([LANG=]FILE); counts in the KD terms only, never in CE."),
    unlabelled_max: int | None = typer.Option(None, "--unlabelled-max", min=1,
                                              help="Use at most N unlabelled examples (a fixed sample)."),
    fraction: float | None = opt.FRACTION,
    max_dev_per_language: int = opt.MAX_DEV,
    max_test_per_language: int | None = typer.Option(None, "--max-test-per-language", min=1, help="Evaluate every "
                                                     "model on at most N test examples per language (fixed sample)."),
    bench_lengths: str = typer.Option("32,128", "--bench-lengths", help="Sequence lengths of the speed measurements."),
    bench_batch_size: int = typer.Option(32, "--bench-batch-size", min=1, help="Batch of the throughput numbers."),
    bench_repeats: int = typer.Option(5, "--bench-repeats", min=1, help="Timed repeats of the final bench."),
    bench_threads: int | None = typer.Option(1, "--bench-threads", min=1, help="torch / onnxruntime threads while "
                                             "timing (1: stable on a shared machine)."),
    bootstrap_resamples: int = typer.Option(1000, "--bootstrap-resamples", min=1, help="Resamples of the "
                                            "retention intervals."),
    allow_untrained_teacher: bool = typer.Option(False, "--allow-untrained-teacher",
                                                 help="Distil from a teacher that looks untrained."),
    allow_weak_teacher: bool = typer.Option(False, "--allow-weak-teacher", help="Distil from a teacher that does "
                                            "not beat the trivial baselines."),
    target_retention_seen: float = typer.Option(0.95, "--target-retention-seen", help="Report target: student F1 ÷ "
                                                "teacher F1 on the seen languages."),
    target_retention_unseen: float = typer.Option(0.90, "--target-retention-unseen", help="Report target on the "
                                                  "unseen languages."),
    target_params: float | None = typer.Option(None, "--target-params", help="The student's parameters as a "
                                               "share of the teacher's, e.g. 0.10: with --target-speedup the plan "
                                               "picks the largest candidate that fits it (with the planned "
                                               "vocabulary); reported."),
    target_wall_minutes: float | None = typer.Option(None, "--target-wall-minutes", help="Report target: the wall "
                                                     "time of all stages."),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", help="Upload the student to this Hub repo id and "
                                           "its int8 export to <id>-int8."),
    seed: int = opt.SEED,
    threads: int | None = opt.THREADS,
    overwrite: bool = opt.OVERWRITE,
    training: dict | None = None,
) -> None:
    """Compress a fine-tuned teacher into a deployable student for the languages you name.

    Stages (each kept under OUT/stages/, resumable by re-running the same command): plan → vocabulary
    reduction → depth copy → width selection → KD → int8 export → evaluation of the teacher and every
    intermediate student → bench; then OUT/model, OUT/model-int8, OUT/report.md, OUT/report.json, plots.
    """
    from polydistill.cli.bench import _parse_lengths
    from polydistill.cli.progress import compress_progress
    from polydistill.compress import compress

    opt.set_threads(threads)
    source = opt.one_model(teacher, model_option, "teacher")
    training_settings = opt.validated(CompressTraining, training, "training settings")
    values = dict(
        teacher=source, dataset=dataset, languages=languages, unseen_languages=unseen_languages, data_root=data_root,
        out=out, seed=seed, size=size, layers=layers, hidden=hidden, intermediate=intermediate, layer_map=layer_map,
        width_select=width_select, calibration_size=calibration_size, vocab_coverage=vocab_coverage,
        wordfreq=wordfreq, wordfreq_words=wordfreq_words, target_speedup=target_speedup, speedup_on=speedup_on,
        speedup_repeats=speedup_repeats, budget_minutes=budget_minutes, training=training_settings,
        kd_weights=opt.kd_weights({"kd_term": kd_term}), unlabelled_data=unlabelled_data,
        unlabelled_max=unlabelled_max, fraction=fraction,
        max_dev_per_language=max_dev_per_language, max_test_per_language=max_test_per_language,
        bench_lengths=_parse_lengths(bench_lengths), bench_batch_size=bench_batch_size, bench_repeats=bench_repeats,
        bench_threads=bench_threads, bootstrap_resamples=bootstrap_resamples,
        allow_untrained_teacher=allow_untrained_teacher, allow_weak_teacher=allow_weak_teacher,
        target_retention_seen=target_retention_seen, target_retention_unseen=target_retention_unseen,
        target_params=target_params, target_wall_minutes=target_wall_minutes, push_to_hub=push_to_hub,
        threads=threads, overwrite=overwrite)
    with compress_progress() as on_event:
        result = compress(values, on_event=on_event)
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
) -> None:
    """Retention over seeds: the seed-averaged student F1 ÷ the teacher's F1 of several compress runs of one
    teacher, with a 95 % paired-bootstrap interval per group (seen / unseen / all), against their targets."""
    from polydistill.compress.seeds import render_markdown, seeds_retention
    from polydistill.io import atomic_write_json

    result = seeds_retention(runs, model=model, resamples=resamples)
    typer.echo(render_markdown(result))
    if json_out is not None:
        atomic_write_json(json_out, result)
        typer.echo(f"numbers: {json_out}")


def register(app: typer.Typer) -> None:
    app.command(name="compress")(compress_command)
    app.command(name="compress-seeds")(compress_seeds_command)
