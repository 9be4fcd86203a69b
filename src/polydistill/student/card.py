"""Model cards (``README.md``) in the Hugging Face Hub's convention, built with ``huggingface_hub``'s
``ModelCard`` / ``ModelCardData``: YAML metadata the Hub shows (base model, languages, datasets,
metrics with a ``model-index``, pipeline tag, licence, tags) and prose saying in words what
``polydistill.json`` and ``run.json`` record.

One builder serves every model polydistill writes: a student straight from weight copy, a
fine-tuned teacher, a distilled student, an lm-distilled student, a vocabulary-reduced model.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from polydistill.io import CARD_FILE, PROVENANCE_FILE, RUN_FILE, atomic_write_text
from polydistill.student.provenance import Provenance

PIPELINE_TAGS = {"sequence": "text-classification", "token": "token-classification", "mlm": "fill-mask",
                 "base": "feature-extraction"}
_HUB_DATASETS = {"massive": "AmazonScience/massive", "tsm": "cardiffnlp/tweet_sentiment_multilingual",
                 "universal-ner": "universalner/universal_ner"}
_INIT_WORDS = {
    "from-teacher": "copied from the teacher: embeddings, the mapped encoder layers and the task head",
    "from-base": "embeddings and the mapped encoder layers copied from the pretrained base model; the task "
    "head is newly initialised",
    "from-scratch": "nothing copied: the architecture's standard random initialisation",
}
_STAGE_WORDS = {
    "student": "built by weight copy with `polydistill student`; not trained yet (the starting point for "
               "`polydistill distill`)",
    "finetune": "fine-tuned with `polydistill finetune`",
    "distill": "distilled with `polydistill distill` (TinyBERT-style task KD)",
    "lm-distill": "distilled with `polydistill lm-distill` (Eliquare / DistilBERT triplet loss on a corpus)",
    "vocab-reduce": "vocabulary reduced with `polydistill vocab reduce` (VocabReduce)",
}


def command_line() -> str | None:
    """The polydistill command that is running, for the card's "how it was made" line."""
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program in ("polydistill", "__main__.py"):
        return shlex.join(["polydistill", *sys.argv[1:]])
    return None


def _front_matter_license(model_dir: str | None) -> str | None:
    """The licence in a local model directory's card, inherited by the models made from it."""
    if not model_dir or not (Path(model_dir) / CARD_FILE).is_file():
        return None
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(Path(model_dir) / CARD_FILE).data.to_dict().get("license")
    except Exception:  # a card without valid YAML: nothing to inherit
        return None


def _languages(codes: list[str]) -> list[str]:
    from polydistill.data.languages import iso_language

    return sorted({iso for code in codes if (iso := iso_language(code))})


def build_card(stage: str, provenance: Provenance | None, run: dict[str, Any] | None = None,
               source: str | None = None):
    """The ``ModelCard`` of a model made by ``stage`` from ``source`` (a model directory or hub id)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    prov = provenance or Provenance()
    run = run or {}
    data = run.get("data") or {}
    task = prov.task if prov.task == "mlm" else (data.get("task") or prov.task or "base")
    base_model = prov.teacher or run.get("teacher") or source
    dataset = data.get("name")
    dataset_id = _HUB_DATASETS.get(dataset, dataset) if dataset else None
    languages = _languages(list(data.get("languages") or []))
    result = run.get("result") or {}
    name = f"{stage} {Path(base_model).name if base_model else 'model'}"
    eval_results = None
    if result.get("best_dev_f1") is not None and dataset_id and task in ("sequence", "token"):
        eval_results = [EvalResult(task_type=PIPELINE_TAGS[task], dataset_type=dataset_id, dataset_name=dataset,
                                   dataset_split="validation", metric_type="f1",
                                   metric_value=round(float(result["best_dev_f1"]), 4))]
    tags = ["polydistill", stage]
    if stage in ("distill", "lm-distill") or prov.is_student:
        tags.append("knowledge-distillation")
    if prov.init:
        tags.append(prov.init)
    card_data = ModelCardData(
        model_name=name, base_model=base_model if base_model and not Path(base_model).is_absolute() else None,
        language=languages or None, datasets=[dataset_id] if dataset_id else None,
        metrics=["f1"] if eval_results else None, eval_results=eval_results,
        pipeline_tag=PIPELINE_TAGS.get(task), library_name="transformers",
        license=_front_matter_license(source) or _front_matter_license(prov.teacher), tags=tags,
    )
    body = "\n".join(_prose(stage, prov, run, base_model, languages, result))
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}\n")


def _prose(stage, prov: Provenance, run, base_model, languages, result) -> list[str]:
    lines = [f"# {Path(base_model).name if base_model else 'A model'}: {stage}", ""]
    lines.append(f"This model was {_STAGE_WORDS.get(stage, f'made by polydistill {stage}')}"
                 + (f" from `{base_model}`." if base_model else "."))
    lines.append("")
    if prov.is_student:
        lines += ["## How the student was built", "", *_student_lines(prov), ""]
    data = run.get("data") or {}
    if data:
        lines += ["## Training data", "",
                  f"- **Dataset:** {data.get('name')} ({data.get('task')}), {data.get('train', '?')} training and "
                  f"{data.get('validation', '?')} validation examples.",
                  f"- **Languages:** {' '.join(data.get('languages') or []) or 'not recorded'}"
                  + (f" (ISO: {', '.join(languages)})." if languages else "."), ""]
    if result:
        f1 = result.get("best_dev_f1")
        lines += ["## Results", "",
                  f"- best validation F1: {100 * f1:.2f}" if f1 is not None else "- no validation F1 recorded",
                  f"- {result.get('global_step', '?')} optimiser steps in {result.get('train_seconds', '?')} s", ""]
    for step in ("vocab_reduction", "lm_distill", "export"):
        record = prov.get(step)
        if record:
            lines += [f"## {step.replace('_', ' ')}", "", *_record_lines(record), ""]
    command = run.get("command")
    if command:
        lines += ["## Reproduce", "", f"```bash\n{command}\n```", ""]
    lines.append(f"The full record is in `{PROVENANCE_FILE}`" + (f" and `{RUN_FILE}`." if run else "."))
    return lines


def _student_lines(prov: Provenance) -> list[str]:
    width, sizes = prov.width or {}, prov.teacher_sizes or {}
    lines = [f"- **Initialisation:** `{prov.init}`: {_INIT_WORDS.get(prov.init or '', prov.init)}."]
    if prov.base:
        lines.append(f"- **Base model:** `{prov.base}`.")
    if prov.init != "from-scratch" and prov.teacher_layers is not None:
        one_indexed = [k + 1 for k in prov.teacher_layers]
        lines.append(f"- **Teacher layers copied** (layer map `{prov.layer_map}`): 0-indexed {prov.teacher_layers} "
                     f"(1-indexed {one_indexed}); student layer i is a copy of the i-th listed layer.")
    else:
        lines.append(f"- **Depth:** {prov.num_layers} layers (nothing copied).")
    if width:
        lines.append(
            f"- **Width** ({width.get('method')} selection): hidden {width.get('hidden_size')} of "
            f"{sizes.get('hidden_size')}, FFN {width.get('intermediate_size')} of {sizes.get('intermediate_size')}, "
            f"{width.get('num_heads')} of {sizes.get('num_heads')} heads of size {width.get('head_size')} "
            f"(teacher {sizes.get('head_size')}).")
        if width.get("method") == "uniform" and prov.init != "from-scratch":
            lines.append("  Uniform selection keeps evenly spaced elements (floor(j·n/k)), the same hidden indices "
                         "in embeddings, LayerNorms, attention and FFN so the residual stream stays aligned.")
        if width.get("criterion"):
            cal = width.get("calibration") or {}
            lines.append(
                f"  Importance selection, criterion {width['criterion']}; calibration data: "
                f"{cal.get('examples', width.get('calibration_examples'))} examples of {cal.get('dataset', '?')} "
                f"({cal.get('split', 'train')}, seed {cal.get('seed', '?')}); the kept indices are under "
                "`width.indices` in `polydistill.json`.")
        if width.get("layer_selection"):
            chosen = width["layer_selection"]
            lines.append(f"  Teacher layers chosen by importance ({chosen['criterion']}): removal order "
                         f"{[s['removed'] for s in chosen['trace']]}.")
    if prov.labels:
        lines.append(f"- **Labels:** {len(prov.labels)} ({', '.join(map(str, prov.labels[:20]))}"
                     f"{', …' if len(prov.labels) > 20 else ''}).")
    if prov.parameters:
        lines.append(f"- **Parameters:** {prov.parameters:,} (teacher {prov.teacher_parameters or 0:,}).")
    lines.append(f"- **Seed:** {prov.seed}; built {prov.created} with "
                 + ", ".join(f"{k} {v}" for k, v in prov.versions.items()) + ".")
    return lines


def _record_lines(record: dict[str, Any]) -> list[str]:
    return [f"- {key}: {value}" for key, value in record.items()
            if not isinstance(value, dict | list) or len(str(value)) < 200]


def write_card(out: str | Path, stage: str, provenance: Provenance | None, run: dict[str, Any] | None = None,
               source: str | None = None) -> Path:
    card = build_card(stage, provenance, run, source)
    return atomic_write_text(Path(out) / CARD_FILE, str(card))
