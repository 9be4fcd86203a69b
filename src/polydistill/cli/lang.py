"""``polydistill vocab reduce`` and ``polydistill lm-distill`` (seed 004: Eliquare, VocabReduce)."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.errors import PolydistillError

vocab_app = typer.Typer(help="Vocabulary tools (VocabReduce).", no_args_is_help=True)


@vocab_app.command(name="reduce")
def vocab_reduce_cmd(
    model: str | None = typer.Argument(None, help="Model directory (teacher or student, any head).",
                                       show_default=False),
    model_option: str | None = opt.MODEL_OPTION,
    out: Path = opt.OUT,
    corpus: list[Path] = typer.Option(None, "--corpus", help="Plain-text file(s), one sentence per line."),
    dataset: str | None = opt.DATASET_OPTIONAL,
    languages: str = typer.Option(None, "--languages", "-l", help="Languages of --dataset, e.g. sw-KE (comma list)."),
    data_root: str | None = opt.DATA_ROOT,
    min_sentence_freq: float = typer.Option(
        0.0005, "--min-sentence-freq", help="Keep sub-words occurring in at least this fraction of sentences."
    ),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Keep at most this many corpus sub-words "
                                   "(most frequent first); specials and character fallbacks come on top."),
    overwrite: bool = opt.OVERWRITE,
) -> None:
    """Keep only the sub-words a language needs: smaller embedding, same outputs on that language.

    Special tokens, unk and the corpus' single characters are always kept, so any text still
    tokenises: WordPiece words with removed pieces split into smaller kept pieces (a word with a
    never-seen character becomes one [UNK]); Unigram re-segments with Viterbi (unknown characters
    become <unk>).
    """
    from polydistill.lang.vocab import dataset_sentences, read_corpus_files, vocab_reduce

    model = opt.one_model(model, model_option)
    if bool(corpus) == bool(dataset):
        raise PolydistillError("Pass either --corpus FILE... or --dataset NAME --languages L, not both or neither.")
    if dataset:
        if not languages:
            raise PolydistillError("--dataset needs --languages (the language whose vocabulary to keep).")
        sentences = dataset_sentences(dataset, languages, data_root)
        description = f"{dataset} {languages} train"
    else:
        sentences = read_corpus_files(corpus)
        description = ", ".join(str(p) for p in corpus)
    result = vocab_reduce(model, sentences, out, min_sentence_freq=min_sentence_freq, max_tokens=max_tokens,
                          corpus_description=description, overwrite=overwrite)
    rec = result.provenance["vocab_reduction"]
    typer.echo(
        f"vocabulary {rec['vocab_before']:,} -> {rec['vocab_after']:,}; parameters {rec['params_before']:,} -> "
        f"{rec['params_after']:,} ({rec['params_reduction']:.1%} fewer); saved to {out}"
    )


def _lm_options():
    from polydistill.lang.settings import LMDistillSettings

    return opt.settings_options(LMDistillSettings, exclude={"progress", "cache_dir", "save_total_limit"}) \
        + opt.PRECISION_ALIASES


@opt.with_settings(("settings", _lm_options()))
def lm_distill_cmd(
    model: str | None = opt.MODEL_ARGUMENT,
    teacher: str | None = typer.Option(None, "--teacher", "--model", "-m",
                                       help="The teacher, as an option (with or without an MLM head)."),
    corpus: list[Path] = typer.Option(..., "--corpus", help="Plain-text file(s), one sentence/document per line."),
    threads: int | None = opt.THREADS,
    settings: dict | None = None,
) -> None:
    """Task-agnostic distillation on a monolingual corpus with the DistilBERT triplet loss (Eliquare).

    loss = α_ce·KL(teacher‖student at T)·T² + α_mlm·MLM + α_cos·(1 − cos(last hidden)) [+ α_mse·MSE].
    Best checkpoint by validation distillation loss; re-running the same command resumes.
    """
    opt.set_threads(threads)
    from polydistill.lang.lm_distill import lm_distill
    from polydistill.lang.settings import LMDistillSettings

    source = opt.one_model(model, teacher, "teacher")
    validated = opt.validated(LMDistillSettings, opt.without_unset_aliases(settings), "lm-distill settings")
    result = lm_distill(source, [str(p) for p in corpus], validated)
    if opt.in_main_process():
        typer.echo(f"best validation distillation loss {result.best_val_loss:.4f}; student saved to {result.output_dir}")


def register(app: typer.Typer) -> None:
    app.add_typer(vocab_app, name="vocab")
    app.command(name="lm-distill")(lm_distill_cmd)
