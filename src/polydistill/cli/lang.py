"""``polydistill vocab reduce`` and ``polydistill lm-distill`` (Singh et al. 2023: Eliquare, VocabReduce)."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.distill.settings import LMDistillSettings
from polydistill.errors import PolydistillError
from polydistill.io import atomic_write_json, check_output_path

vocab_app = typer.Typer(help="Vocabulary tools (VocabReduce): plan, then reduce.", no_args_is_help=True)


def _vocab_options():
    """The options ``vocab plan`` and ``vocab reduce`` share: sources, thresholds, held-out text, report."""
    x = opt.extra_option
    return [
        x("corpus", list[str] | None, None, "--corpus",
          help="[LANG=]FILE (repeatable): plain text (one sentence a line), JSONL with a \"text\" field, or a "
               "datasets folder with a text column; LANG (e.g. de=wiki.txt) ties it to a language."),
        x("dataset_splits", str, "train", "--dataset-splits",
          help="Splits of --dataset whose inputs (never labels) are vocabulary sources, e.g. train,validation."),
        x("wordfreq", list[str] | None, None, "--wordfreq",
          help="Languages (repeatable or comma list; en, de-DE, tl-PH...) whose top words from the wordfreq "
               "package are a source (42 languages; not sw or am)."),
        x("wordfreq_words", int | None, None, "--wordfreq-words",
          help="Top words per --wordfreq language (default 50,000 unless --wordfreq-mass is given)."),
        x("wordfreq_mass", float | None, None, "--wordfreq-mass",
          help="Instead (or as well): the fewest top words whose frequencies add up to this share of running words."),
        x("wordfreq_min_freq", float, 0.0, "--wordfreq-min-freq",
          help="Keep a sub-word of the listed words if the words using it have at least this total frequency "
               "(0 = all; the Eliquare 0.05 % sentence frequency is about 0.0005 / words-per-sentence)."),
        x("wordfreq_capitalized", bool, True, "--wordfreq-capitalized/--no-wordfreq-capitalized",
          help="Also take each listed word capitalised (word lists are lower-case)."),
        x("keep_text", list[str] | None, None, "--keep-text",
          help="Text whose pieces are always kept (repeatable); default: e5's 'query: ' and 'passage: ' for an "
               "e5 model. Sentence-transformers prompts of the model are always kept."),
        x("min_sentence_freq", float, 0.0005, "--min-sentence-freq",
          help="Keep sub-words occurring in at least this fraction of a text source's sentences (Eliquare)."),
        x("max_tokens", int | None, None, "--max-tokens",
          help="Keep at most this many sub-words per text source (most frequent first); specials and "
               "character fallbacks come on top."),
        x("min_coverage", float | None, None, "--min-coverage",
          help="Instead of the thresholds: per language, the smallest vocabulary whose held-out token coverage "
               "reaches this, e.g. 0.995."),
        x("heldout", list[str] | None, None, "--heldout",
          help="[LANG=]FILE (repeatable): held-out text the coverage is measured on (default: the --heldout-split "
               "inputs of --dataset)."),
        x("heldout_split", str, "validation", "--heldout-split",
          help="Split of --dataset measured as held-out text: validation | test | none."),
        x("report", Path | None, None, "--report", help="Write the plan's report (coverage, sizes) as JSON here."),
    ]


def _plan_arguments(dataset: str | None, languages: str | None, data_root: str | None, values: dict) -> dict:
    """The library arguments for the command line's sources and options."""
    from polydistill.vocab.sources import (
        HeldoutText,
        TextSource,
        WordFreqSource,
        corpus_sources,
        dataset_sources,
        heldout_files,
        wordfreq_source,
    )

    if languages and not dataset:
        raise PolydistillError("--languages needs --dataset; for word lists of a language use --wordfreq LANG.")
    if dataset and not languages:
        raise PolydistillError("--dataset needs --languages (the languages whose vocabulary to keep).")
    sources: list[TextSource | WordFreqSource] = []
    heldout: list[HeldoutText] = []
    if values["corpus"]:
        sources += corpus_sources(values["corpus"])
    splits = [s.strip() for s in values["dataset_splits"].split(",")]
    heldout_split = None if values["heldout_split"].strip().lower() == "none" else values["heldout_split"].strip()
    if dataset:
        data_sources, data_heldout = dataset_sources(dataset, languages, data_root, splits,
                                                     None if values["heldout"] else heldout_split)
        sources += data_sources
        heldout += data_heldout
        if heldout_split in splits and not values["heldout"]:
            typer.echo(f"note: the {heldout_split} split is both a source and the held-out text, so its coverage "
                       "is optimistic (use --heldout-split or --heldout).", err=True)
    codes = [c.strip() for item in values["wordfreq"] or [] for c in item.split(",") if c.strip()]
    sources += [wordfreq_source(code, values["wordfreq_words"], values["wordfreq_mass"],
                                capitalized=values["wordfreq_capitalized"]) for code in codes]
    if not sources:
        raise PolydistillError("Give at least one vocabulary source: --corpus FILE..., --dataset NAME --languages L, "
                               "or --wordfreq LANG.")
    if values["heldout"]:
        heldout += heldout_files(values["heldout"])
    return {"sources": sources, "heldout": heldout, "keep_text": values["keep_text"],
            "min_sentence_freq": values["min_sentence_freq"], "max_tokens": values["max_tokens"],
            "wordfreq_min_freq": values["wordfreq_min_freq"], "min_coverage": values["min_coverage"]}


_LANGUAGES = typer.Option(None, "--languages", "-l", help="Languages of --dataset: codes (comma list, e.g. sw-KE) or "
                          "a partition (all | seen | unseen | english).")


@vocab_app.command(name="plan")
@opt.with_settings(("selection", _vocab_options()))
def vocab_plan_cmd(
    model: str | None = typer.Argument(None, help="Model directory or hub id (teacher or student, any head).",
                                       show_default=False),
    model_option: str | None = opt.MODEL_OPTION,
    dataset: str | None = opt.DATASET_OPTIONAL,
    languages: str | None = _LANGUAGES,
    data_root: str | None = opt.DATA_ROOT,
    *, selection: dict,  # filled in by opt.with_settings
) -> None:
    """Show what `vocab reduce` would keep: held-out coverage per language, vocabulary and parameters.

    Nothing is written except --report. Token coverage = share of held-out tokens whose word keeps
    all its pieces (and so tokenises exactly as before); sentence coverage likewise for sentences.
    """
    from polydistill.vocab.coverage import render_report
    from polydistill.vocab.reduce import plan_vocab

    model = opt.one_model(model, model_option)
    if selection["report"]:
        check_output_path(selection["report"], kind="file")
    planning = plan_vocab(model, **_plan_arguments(dataset, languages, data_root, selection))
    render_report(planning.report)
    if selection["report"]:
        atomic_write_json(selection["report"], planning.report)
        typer.echo(f"report written to {selection['report']}")


@vocab_app.command(name="reduce")
@opt.with_settings(("selection", _vocab_options()))
def vocab_reduce_cmd(
    model: str | None = typer.Argument(None, help="Model directory or hub id (teacher or student, any head).",
                                       show_default=False),
    model_option: str | None = opt.MODEL_OPTION,
    out: Path = opt.OUT,
    dataset: str | None = opt.DATASET_OPTIONAL,
    languages: str | None = _LANGUAGES,
    data_root: str | None = opt.DATA_ROOT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (as `vocab plan`) and write nothing "
                                 "but --report."),
    overwrite: bool = opt.OVERWRITE,
    push_to_hub: str | None = opt.PUSH_TO_HUB,
    *, selection: dict,  # filled in by opt.with_settings
) -> None:
    """Keep only the sub-words the target languages need: smaller embedding, same outputs on their text.

    Sources are combined (--corpus, --dataset inputs, --wordfreq); the kept set is the union of each
    language's selection. Special tokens, unk, the always-kept texts and the sources' single
    characters are always kept, so any text still tokenises: WordPiece words with removed pieces split
    into smaller kept pieces (a word with a never-seen character becomes one [UNK]); Unigram
    re-segments with Viterbi (unknown characters become <unk>); BPE falls back along its merges.
    The coverage report is printed before anything is written.
    """
    from polydistill.vocab.coverage import render_report
    from polydistill.vocab.reduce import vocab_reduce

    model = opt.one_model(model, model_option)
    if push_to_hub:
        from polydistill.hub import check_repo_id

        check_repo_id(push_to_hub)  # before the slow work
    arguments = _plan_arguments(dataset, languages, data_root, selection)
    if dry_run:
        from polydistill.vocab.reduce import plan_vocab

        if selection["report"]:
            check_output_path(selection["report"], kind="file")
        planning = plan_vocab(model, **arguments)
        render_report(planning.report)
        if selection["report"]:
            atomic_write_json(selection["report"], planning.report)
        typer.echo(f"dry run: nothing written to {out}")
        return
    result = vocab_reduce(model, None, out, overwrite=overwrite, report_path=selection["report"],
                          on_report=render_report, **arguments)
    rec = result.provenance["vocab_reduction"]
    typer.echo(
        f"vocabulary {rec['vocab_before']:,} -> {rec['vocab_after']:,}; parameters {rec['params_before']:,} -> "
        f"{rec['params_after']:,} ({rec['params_reduction']:.1%} fewer); saved to {out}"
    )
    if push_to_hub:
        from polydistill.hub import push_model_dir

        typer.echo(f"pushed to the Hub: {push_model_dir(out, push_to_hub)}")


def _lm_options():
    return opt.with_precision_aliases(
        opt.settings_options(LMDistillSettings, exclude={"progress", "cache_dir", "save_total_limit"}))


@opt.with_settings(("settings", _lm_options()))
def lm_distill_cmd(
    model: str | None = opt.MODEL_ARGUMENT,
    teacher: str | None = typer.Option(None, "--teacher", "--model", "-m",
                                       help="The teacher, as an option (with or without an MLM head)."),
    corpus: list[Path] = typer.Option(..., "--corpus", help="Plain-text file(s), one sentence/document per line."),
    threads: int | None = opt.THREADS,
    *, settings: dict,  # filled in by opt.with_settings
) -> None:
    """Task-agnostic distillation on a monolingual corpus with the DistilBERT triplet loss (Eliquare).

    loss = α_ce·KL(teacher‖student at T)·T² + α_mlm·MLM + α_cos·(1 − cos(last hidden)) [+ α_mse·MSE].
    Best checkpoint by validation distillation loss; re-running the same command resumes.
    """
    opt.set_threads(threads)
    from polydistill.distill.lm_distill import lm_distill

    source = opt.one_model(model, teacher, "teacher")
    validated = opt.validated(LMDistillSettings, opt.without_unset_aliases(settings), "lm-distill settings")
    result = lm_distill(source, [str(p) for p in corpus], validated)
    if opt.in_main_process():
        typer.echo(f"best validation distillation loss {result.best_val_loss:.4f}; student saved to {result.output_dir}")


def register(app: typer.Typer) -> None:
    app.add_typer(vocab_app, name="vocab")
    app.command(name="lm-distill")(lm_distill_cmd)
