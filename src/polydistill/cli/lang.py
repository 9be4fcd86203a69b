"""``polydistill vocab reduce`` and ``polydistill lm-distill`` (seed 004: Eliquare, VocabReduce)."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.errors import PolydistillError

vocab_app = typer.Typer(help="Vocabulary tools (VocabReduce).", no_args_is_help=True)


@vocab_app.command(name="reduce")
def vocab_reduce_cmd(
    model: str = typer.Option(..., "--model", help="Model directory (teacher or student, any head)."),
    out: Path = typer.Option(..., "--out", help="Output model directory (written atomically)."),
    corpus: list[Path] = typer.Option(None, "--corpus", help="Plain-text file(s), one sentence per line."),
    dataset: str = typer.Option(None, "--dataset", help="Or a polydistill dataset (massive, tsm, universal-ner)."),
    languages: str = typer.Option(None, "--languages", help="Languages of --dataset, e.g. sw-KE (comma list)."),
    data_root: str = typer.Option(None, "--data-root", help="Local data root for --dataset."),
    min_sentence_freq: float = typer.Option(
        0.0005, "--min-sentence-freq", help="Keep sub-words occurring in at least this fraction of sentences."
    ),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Keep at most this many corpus sub-words "
                                   "(most frequent first); specials and character fallbacks come on top."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Keep only the sub-words a language needs: smaller embedding, same outputs on that language.

    Special tokens, unk and the corpus' single characters are always kept, so any text still
    tokenises: WordPiece words with removed pieces split into smaller kept pieces (a word with a
    never-seen character becomes one [UNK]); Unigram re-segments with Viterbi (unknown characters
    become <unk>).
    """
    from polydistill.lang.vocab import dataset_sentences, read_corpus_files, vocab_reduce

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


def lm_distill_cmd(
    teacher: str = typer.Option(..., "--teacher", help="Teacher model directory (with or without an MLM head)."),
    corpus: list[Path] = typer.Option(..., "--corpus", help="Plain-text file(s), one sentence/document per line."),
    out: Path = typer.Option(..., "--out", help="Output directory: best student (HF MaskedLM dir) + checkpoints."),
    layers: int = typer.Option(6, "--layers", help="Student depth."),
    layer_map: str = typer.Option("alternate-first", "--layer-map",
                                  help="Teacher layers to copy; alternate-first = 2n-1 (DistilBERT)."),
    alpha_ce: float = typer.Option(5.0, "--alpha-ce", help="Weight of the soft-target KL·T² term."),
    alpha_mlm: float = typer.Option(2.0, "--alpha-mlm", help="Weight of the student's MLM loss."),
    alpha_cos: float = typer.Option(1.0, "--alpha-cos", help="Weight of the last-hidden-state cosine loss."),
    alpha_mse: float = typer.Option(0.0, "--alpha-mse", help="Weight of a last-hidden-state MSE (off by default)."),
    temperature: float = typer.Option(2.0, "--temperature", help="Softmax temperature T of the soft targets."),
    mlm_probability: float = typer.Option(0.15, "--mlm-probability"),
    mlm_smoothing: float = typer.Option(0.7, "--mlm-smoothing",
                                        help="Mask token w with probability ∝ count(w)^-s (0 = uniform)."),
    fit_teacher_head_steps: int = typer.Option(
        300, "--fit-teacher-head-steps",
        help="Teacher without an MLM head (e.g. e5): train a head on the frozen teacher for this many steps "
        "first, giving soft targets; 0 drops the soft-target term (with a warning) and keeps MLM + cosine.",
    ),
    fit_teacher_head_lr: float = typer.Option(1e-3, "--fit-teacher-head-lr", help="Learning rate of that head fit."),
    epochs: float = typer.Option(3.0, "--epochs"),
    max_steps: int = typer.Option(-1, "--max-steps"),
    learning_rate: float = typer.Option(5e-4, "--learning-rate"),
    batch_size: int = typer.Option(16, "--batch-size"),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    max_length: int = typer.Option(128, "--max-length"),
    eval_steps: int = typer.Option(200, "--eval-steps"),
    validation_fraction: float = typer.Option(0.1, "--validation-fraction"),
    max_lines: int = typer.Option(None, "--max-lines", help="Use only the first N corpus lines."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Task-agnostic distillation on a monolingual corpus with the DistilBERT triplet loss (Eliquare).

    loss = α_ce·KL(teacher‖student at T)·T² + α_mlm·MLM + α_cos·(1 − cos(last hidden)) [+ α_mse·MSE].
    Best checkpoint by validation distillation loss; re-running the same command resumes.
    """
    from polydistill.lang.lm_distill import LMDistillSettings, lm_distill

    settings = LMDistillSettings(
        output_dir=str(out), layers=layers, layer_map=layer_map, alpha_ce=alpha_ce, alpha_mlm=alpha_mlm,
        alpha_cos=alpha_cos, alpha_mse=alpha_mse, temperature=temperature, mlm_probability=mlm_probability,
        mlm_smoothing=mlm_smoothing, fit_teacher_head_steps=fit_teacher_head_steps,
        fit_teacher_head_lr=fit_teacher_head_lr, epochs=epochs,
        max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size, grad_accum=grad_accum,
        max_length=max_length, eval_steps=eval_steps, validation_fraction=validation_fraction,
        max_lines=max_lines, seed=seed, overwrite=overwrite,
    )
    result = lm_distill(teacher, [str(p) for p in corpus], settings)
    typer.echo(f"best validation distillation loss {result.best_val_loss:.4f}; student saved to {result.output_dir}")


def register(app: typer.Typer) -> None:
    app.add_typer(vocab_app, name="vocab")
    app.command(name="lm-distill")(lm_distill_cmd)
