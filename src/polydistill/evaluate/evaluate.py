"""``evaluate_model``: overall and per-language scores of a fine-tuned model, with baselines.

Overall F1 is macro-F1 (classification) or seqeval entity F1 (NER), computed on the pooled
examples; per-language and per-partition (seen / unseen) scores use the same metric on each
language's examples. Predictions are made once; every breakdown re-scores them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from polydistill.architectures import get_adapter, task_of
from polydistill.data.languages import resolve_languages
from polydistill.data.load import ADAPTERS
from polydistill.data.tokenize import WORD_IDS, data_collator, tokenize_task_data
from polydistill.data.types import LANGUAGE, TAGS, TEXT, TOKENS, TaskData
from polydistill.errors import PolydistillError, require_types
from polydistill.evaluate.baselines import majority_label, majority_scores, random_ner_scores
from polydistill.evaluate.metrics import classification_scores, ner_scores
from polydistill.io import RUN_FILE, read_record
from polydistill.logs import interactive
from polydistill.modeling import is_hub_id, load_tokenizer, resolve_model_dir


@dataclass
class ExamplePredictions:
    """Per-example gold and predicted ids of an evaluation, in the split's order (what the scores
    were computed from): one id per example (classification) or one list of ids per sentence (NER,
    one id per word). ``texts``: each example's text (NER: its words joined by U+001F), which
    identifies the examples when two evaluations are paired."""

    true: list
    pred: list
    languages: list[str]
    texts: list[str]


@dataclass
class EvalReport:
    model: str
    dataset: str
    task: str
    split: str
    languages: list[str]
    label_names: list[str]
    overall: dict[str, float]
    per_language: dict[str, dict[str, float]]
    # pooled scores of named partitions (seen / unseen) that overlap the evaluated languages, with their
    # "languages" (a list)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    # where seen / unseen come from: "training record" (the model's run.json) or "paper partition"
    groups_from: str = "paper partition"
    # {"majority": {...}} (classification) or {"random": {...}} (NER); each with overall + per_language
    baselines: dict[str, Any] = field(default_factory=dict)
    max_length: int = 128
    source: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # per-example predictions (kept in memory for callers such as the grid; not part of to_dict)
    examples: ExamplePredictions | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, examples=None))
        out.pop("examples")
        return out


def _label_mapping(config, label_names: list[str]) -> list[int] | None:
    """Model output id -> data label id; None when they agree exactly. Raises on a different label set."""
    id2label = {int(k): v for k, v in (config.id2label or {}).items()}
    model_names = [id2label.get(i) for i in range(len(id2label))]
    if model_names == list(label_names):
        return None
    named = [name for name in model_names if name is not None]  # None: an id the config has no label for
    if len(named) == len(model_names) and sorted(map(str, named)) == sorted(label_names):
        index = {name: i for i, name in enumerate(label_names)}
        return [index[name] for name in named]
    shown = ", ".join(map(str, model_names[:6])) + (" ..." if len(model_names) > 6 else "")
    raise PolydistillError(
        f"The model's labels ({len(model_names)}: {shown}) are not the dataset's {len(label_names)} labels "
        f"({', '.join(label_names[:6])}{' ...' if len(label_names) > 6 else ''}); evaluate a model fine-tuned on "
        "this dataset (its config.id2label must name the same labels)."
    )


def _select_languages(data: TaskData, split_ds, languages) -> list[str]:
    """Languages of the split to score: all present, or the requested codes / partitions among them."""
    in_split = set(split_ds[LANGUAGE])
    present = [code for code in data.languages if code in in_split] or sorted(in_split)
    if languages is None:
        return present
    named = {k: [c for c in v if c in in_split] for k, v in ADAPTERS[data.name].named.items()} \
        if data.name in ADAPTERS else {}
    named["all"] = present
    return resolve_languages(languages, present, named, data.name)


def predict(model, tokenizer, data: TaskData, split: str, batch_size: int = 64, max_length: int = 128,
            progress: bool = False):
    """Model predictions over ``data.splits[split]``: (true ids, predicted ids, languages) per example.

    Classification: one id each. NER: one id per *word* of the sentence, read at the word's first
    sub-word; a word the tokenizer drops (no sub-word, or cut by ``max_length``) is predicted ``O``,
    so every gold entity counts, as a word-level scorer should.
    """
    import torch
    from datasets import DatasetDict

    source = data.splits[split]
    view = TaskData(name=data.name, task=data.task, label_names=data.label_names,
                    splits=DatasetDict({split: source}), languages=data.languages)
    encoded = tokenize_task_data(view, tokenizer, max_length=max_length)[split]
    languages = list(encoded[LANGUAGE])
    collate = data_collator(data.task, tokenizer)
    mapping = _label_mapping(model.config, data.label_names)
    outside = data.label_names.index("O") if "O" in data.label_names else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # batches of similar length pad little: predict in length order, store results in data order
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    trues: list = [None] * len(encoded)
    preds: list = [None] * len(encoded)
    from tqdm.auto import tqdm

    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(order), batch_size), desc=f"predicting {data.name} {split}",
                              unit="batch", disable=not (progress and interactive()), mininterval=2):
                rows = order[start: start + batch_size]
                features = [encoded[i] for i in rows]
                batch = collate(features)
                batch.pop("labels")
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                pred = logits.argmax(-1).cpu()
                if mapping is not None:
                    pred = torch.tensor(mapping)[pred]
                sentences = source[rows]
                if data.task == "sequence":
                    for j, i in enumerate(rows):
                        trues[i], preds[i] = sentences["label"][j], int(pred[j])
                    continue
                width = pred.shape[1]
                for j, (i, tags, feature) in enumerate(zip(rows, sentences[TAGS], features, strict=True)):
                    shift = width - len(feature["input_ids"]) if tokenizer.padding_side == "left" else 0
                    row = [outside] * len(tags)
                    seen = set()
                    for pos, word in enumerate(feature[WORD_IDS]):
                        if word >= 0 and word not in seen:
                            seen.add(word)
                            row[word] = int(pred[j, pos + shift])
                    trues[i], preds[i] = list(tags), row
    finally:
        model.train(was_training)
    return trues, preds, languages


def _scores(task: str, trues, preds, label_names) -> dict[str, float]:
    if task == "sequence":
        return classification_scores(trues, preds)
    true_tags = [[label_names[i] for i in row] for row in trues]
    pred_tags = [[label_names[i] for i in row] for row in preds]
    result = ner_scores(true_tags, pred_tags)
    result["tokens"] = sum(len(row) for row in trues)  # accuracy is per labelled word
    return result


@with_config(ConfigDict(extra="allow"))
class RunData(TypedDict, total=False):
    name: str | None
    languages: list[str] | None


@with_config(ConfigDict(extra="allow"))
class RunOutcome(TypedDict, total=False):
    best_dev_f1: float | None


@with_config(ConfigDict(extra="allow"))
class RunFileSummary(TypedDict, total=False):
    """The fields of a model's ``run.json`` that evaluation and the teacher gate read back (through
    :func:`polydistill.io.read_record`: a hand-edited file of another shape is one sentence)."""

    data: RunData | None
    result: RunOutcome | None


def training_languages(model_dir: str | Path, dataset: str) -> list[str] | None:
    """The languages a model directory (or hub id) was trained on for ``dataset`` (its run.json), or None."""
    path = (resolve_model_dir(model_dir) if is_hub_id(model_dir) else Path(model_dir)) / RUN_FILE
    if not path.is_file():
        return None
    data = read_record(path, RunFileSummary).get("data") or {}
    return list(data.get("languages") or []) if data.get("name") == dataset else None


def evaluate_model(model, tokenizer, data: TaskData, split: str = "test", languages=None,
                   batch_size: int = 64, max_length: int = 128, random_runs: int = 30,
                   seen: list[str] | None = None, progress: bool = False) -> EvalReport:
    """Score ``model`` on ``data.splits[split]`` overall, per language and per seen/unseen group.

    ``model``: a loaded model or a model directory (``tokenizer`` may then be None). ``languages``
    restricts the evaluated languages (codes, or partition names of the dataset). ``seen``: the
    languages the model was trained on; read from a model directory's run.json when not given, and
    the paper's seen/unseen partition when neither says.
    """
    from polydistill.export.runtimes import load_for_inference

    require_types(data=(data, TaskData, "a TaskData (polydistill.data.load_task_data)"),
                  split=(split, str, "a split name such as test"), batch_size=(batch_size, int, "a whole number"),
                  max_length=(max_length, int, "a whole number"), random_runs=(random_runs, int, "a whole number"))
    started = time.perf_counter()
    name = str(model) if isinstance(model, (str, Path)) else getattr(model, "name_or_path", type(model).__name__)
    if isinstance(model, (str, Path)):
        seen = seen if seen is not None else training_languages(model, data.name)
        if tokenizer is None:
            tokenizer = load_tokenizer(model)
        model = load_for_inference(model)  # a PyTorch or an exported (ONNX) model directory
    if tokenizer is None:
        raise PolydistillError("evaluate_model needs a tokenizer when given a loaded model.")
    if split not in data.splits:
        raise PolydistillError(f"Split {split!r} does not exist; choose one of {', '.join(data.splits)}.")
    head = task_of(model)
    if head != data.task:
        raise PolydistillError(
            f"The model has a {head!r} head but {data.name} is a {data.task!r} task; evaluate a model fine-tuned "
            "on this dataset."
        )
    _label_mapping(model.config, data.label_names)  # fail before any work
    notes = list(data.warnings)
    limit = get_adapter(model).position_limit(model.config)
    if limit is not None and max_length > limit:
        notes.append(f"max_length {max_length} exceeds the model's {limit} positions; used {limit}.")
        max_length = limit
    split_ds = data.splits[split]
    chosen = _select_languages(data, split_ds, languages)
    split_ds = split_ds.filter(lambda lang: lang in set(chosen), input_columns=LANGUAGE)
    if len(split_ds) == 0:
        raise PolydistillError(f"The {split} split of {data.name} has no examples for {' '.join(chosen)}; "
                               "choose languages or a split that has data.")
    view = TaskData(name=data.name, task=data.task, label_names=data.label_names,
                    splits=_one_split(split, split_ds), languages=chosen, source=data.source)
    trues, preds, langs = predict(model, tokenizer, view, split, batch_size, max_length, progress)
    texts = list(split_ds[TEXT]) if data.task == "sequence" else ["\x1f".join(words) for words in split_ds[TOKENS]]

    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, lang in enumerate(langs):
        by_lang[lang].append(i)

    def pick(rows, idx):
        return [rows[i] for i in idx]

    overall = _scores(data.task, trues, preds, data.label_names)
    per_language = {lang: _scores(data.task, pick(trues, by_lang[lang]), pick(preds, by_lang[lang]), data.label_names)
                    for lang in chosen if by_lang.get(lang)}
    groups: dict[str, dict[str, Any]] = {}
    for group, members in _groups(data.name, chosen, seen).items():
        idx = sorted(i for lang in members for i in by_lang.get(lang, []))
        if idx and len(members) < len(chosen):
            groups[group] = _scores(data.task, pick(trues, idx), pick(preds, idx), data.label_names)
            groups[group]["languages"] = members

    baselines = _baselines(data, split, trues, langs, by_lang, chosen, random_runs)
    return EvalReport(
        model=name, dataset=data.name, task=data.task, split=split, languages=chosen,
        label_names=list(data.label_names), overall=overall, per_language=per_language, groups=groups,
        groups_from="training record" if seen is not None else "paper partition",
        baselines=baselines, max_length=max_length, source=data.source,
        seconds=round(time.perf_counter() - started, 2), warnings=notes,
        examples=ExamplePredictions(true=trues, pred=preds, languages=langs, texts=texts),
    )


def _one_split(split, ds):
    from datasets import DatasetDict

    return DatasetDict({split: ds})


def _groups(dataset: str, chosen: list[str], seen: list[str] | None) -> dict[str, list[str]]:
    """seen / unseen (/ test-only): from the languages the model trained on when known, else the paper's."""
    if seen is not None:
        groups = {"seen": [lang for lang in chosen if lang in seen],
                  "unseen": [lang for lang in chosen if lang not in seen]}
        return {name: members for name, members in groups.items() if members}
    if dataset not in ADAPTERS:
        return {}
    named = ADAPTERS[dataset].named
    out = {}
    for group in ("seen", "unseen", "test-only"):
        members = [lang for lang in chosen if lang in named.get(group, [])]
        if members:
            out[group] = members
    return out


def _baselines(data: TaskData, split, trues, langs, by_lang, chosen, random_runs) -> dict[str, Any]:
    if data.task == "sequence":
        train = data.splits.get("train")
        pool = [y for y, lang in zip(train["label"], train[LANGUAGE], strict=True) if lang in set(chosen)] \
            if train is not None and len(train) else []
        source = "train"
        if not pool:  # e.g. evaluation-only languages: the evaluated split's own majority
            pool, source = trues, split
        majority = majority_label(pool)
        return {"majority": {
            "label": data.label_names[majority], "from": source,
            "overall": majority_scores(trues, majority),
            "per_language": {lang: majority_scores([trues[i] for i in by_lang[lang]], majority)
                             for lang in chosen if by_lang.get(lang)},
        }}
    names = data.label_names
    true_tags = [[names[i] for i in row] for row in trues]
    return {"random": {
        "runs": random_runs,
        "overall": random_ner_scores(true_tags, names, random_runs),
        "per_language": {lang: random_ner_scores([true_tags[i] for i in by_lang[lang]], names, random_runs)
                         for lang in chosen if by_lang.get(lang)},
    }}
