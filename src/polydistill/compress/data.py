"""compress, the data: the KD languages' training data, the evaluation split of the KD and unseen languages,
the refusals of impossible language choices, and the unlabelled KD inputs of ``--unlabelled-data``."""

from __future__ import annotations

from polydistill.compress.plan import CompressSettings
from polydistill.data.languages import resolve_languages
from polydistill.data.load import get_adapter, load_capped_task_data
from polydistill.errors import require

__all__ = ["load_augmentation", "load_data"]


def load_data(settings: CompressSettings, teacher: str | None = None):
    """(KD data, evaluation data, KD languages, unseen languages, seen languages, notes): the KD languages'
    training data (``--fraction``, dev capped at ``--max-dev-per-language``) and the test split of the KD
    and unseen languages (capped at ``--max-test-per-language``), with the refusals of impossible
    language choices."""
    from polydistill.evaluate.evaluate import training_languages

    s = settings
    adapter = get_adapter(s.dataset)
    teacher_langs = training_languages(teacher or s.teacher, adapter.name)
    notes = []
    languages = s.languages
    if languages == "all" and teacher_langs:  # the default: the teacher's own training languages
        languages = teacher_langs
        notes.append(f"--languages not given: the teacher's training languages {' '.join(teacher_langs)}")
    train = load_capped_task_data(s.dataset, languages=languages, data_root=s.data_root, fraction=s.fraction,
                                  seed=s.seed, purpose="train", max_dev_per_language=s.max_dev_per_language)
    kd = list(train.languages)
    unseen = resolve_languages(s.unseen_languages, adapter.valid, adapter.named, adapter.name) \
        if s.unseen_languages else []
    both = [la for la in unseen if la in kd]
    require(not both, f"{' '.join(both)} {'is' if len(both) == 1 else 'are'} both in --languages and "
                      "--unseen-languages; an unseen language is never trained on.")
    _check_unlabelled_languages(s, kd, unseen)
    if teacher_langs is None:
        seen = kd
        notes.append(f"the teacher has no fine-tuning record for {train.name} (run.json): seen = the KD languages")
    else:
        extra = [la for la in kd if la not in teacher_langs]
        require(not extra, f"--languages {' '.join(extra)}: the teacher was not fine-tuned on "
                           f"{'it' if len(extra) == 1 else 'them'} (its run.json names {' '.join(teacher_langs)}); "
                           "distil its training languages and report others with --unseen-languages.")
        trained = [la for la in unseen if la in teacher_langs]
        require(not trained, f"--unseen-languages {' '.join(trained)}: the teacher was fine-tuned on "
                             f"{'it' if len(trained) == 1 else 'them'}, so {'it is' if len(trained) == 1 else 'they are'} "
                             "not unseen.")
        seen = list(teacher_langs)
    evaluation = load_capped_task_data(s.dataset, languages=[*kd, *unseen], data_root=s.data_root, purpose="evaluate",
                                       max_test_per_language=s.max_test_per_language)
    require(len(evaluation.splits["test"]) > 0, f"{evaluation.name} has no test examples for "
                                                f"{' '.join([*kd, *unseen])}; compress evaluates on the test split.")
    tested = set(evaluation.splits["test"]["language"])
    untested = [la for la in [*kd, *unseen] if la not in tested]
    require(not untested, f"{' '.join(untested)} {'has' if len(untested) == 1 else 'have'} no test examples in "
                          f"{evaluation.name}, so {'its' if len(untested) == 1 else 'their'} retention could not be "
                          "reported; drop it from --languages / --unseen-languages, or add test data.")
    held = set(evaluation.splits["validation"]["language"]) if "validation" in evaluation.splits else set()
    without = [la for la in [*kd, *unseen] if la not in held]
    require(s.vocab_coverage is None or not without,
            f"--vocab-coverage needs validation text of every language to target it on, and {' '.join(without)} "
            f"{'has' if len(without) == 1 else 'have'} none; drop --vocab-coverage (the vocabulary then uses "
            "thresholds).")
    return train, evaluation, kd, unseen, seen, notes


def _check_unlabelled_languages(s: CompressSettings, kd: list[str], unseen: list[str]) -> None:
    """Unlabelled DATASET:LANGUAGES text is tokenized with the reduced vocabulary, which keeps the KD and
    unseen languages only: other languages are refused (a file is taken as it is)."""
    from polydistill.data.unlabelled import parse_source

    if not s.unlabelled_data:
        return
    kind, name, languages = parse_source(s.unlabelled_data)
    if kind != "dataset":
        return
    from polydistill.vocab.sources import language_key

    adapter = get_adapter(name)
    codes = resolve_languages(str(languages) or "all", adapter.valid, adapter.named, adapter.name)
    kept = {language_key(code) for code in [*kd, *unseen]}
    outside = [code for code in codes if language_key(code) not in kept]
    one = len(outside) == 1
    require(not outside, f"--unlabelled-data {s.unlabelled_data}: {' '.join(outside)} {'is' if one else 'are'} "
                         "neither in --languages nor in --unseen-languages, so the reduced vocabulary would not "
                         f"cover {'its' if one else 'their'} text; add {'it' if one else 'them'} to "
                         f"--unseen-languages ({'its' if one else 'their'} vocabulary is then kept).")


def load_augmentation(settings: CompressSettings, task: str):
    """The unlabelled KD inputs of ``--unlabelled-data`` (at most ``--unlabelled-max``, sampled with the
    run's seed), or None without it."""
    if not settings.unlabelled_data:
        return None
    from polydistill.data.unlabelled import load_unlabelled

    return load_unlabelled(settings.unlabelled_data, task, settings.data_root, settings.unlabelled_max, settings.seed)
