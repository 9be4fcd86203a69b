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
_EXPORT_LIBRARY = {"onnx": "onnx", "openvino": "openvino", "safetensors": "transformers"}  # by export format
_STAGE_WORDS = {
    "student": "built by weight copy with `polydistill student`; not trained yet (the starting point for "
               "`polydistill distill`)",
    "finetune": "fine-tuned with `polydistill finetune`",
    "distill": "distilled with `polydistill distill` (TinyBERT-style task KD)",
    "lm-distill": "distilled with `polydistill lm-distill` (Eliquare / DistilBERT triplet loss on a corpus)",
    "vocab-reduce": "vocabulary reduced with `polydistill vocab reduce` (VocabReduce)",
    "export": "exported to ONNX with `polydistill export` (runs with onnxruntime; no PyTorch weights)",
}


def command_line() -> str | None:
    """The polydistill command that is running, for the card's "how it was made" line."""
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program in ("polydistill", "__main__.py"):
        return shlex.join(["polydistill", *sys.argv[1:]])
    return None


def _front_matter_license(model_dir: str | None) -> str | None:
    """The licence in a local model directory's card, inherited by the models made from it."""
    path = Path(model_dir) / CARD_FILE if model_dir else None
    if path is None or not path.is_file():
        return None
    from huggingface_hub import ModelCard

    try:
        if not path.read_text(encoding="utf-8").startswith("---"):
            return None  # no metadata block (huggingface_hub would say so on stderr)
        return ModelCard.load(path).data.to_dict().get("license")
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
    if result.get("best_dev_f1") is not None and dataset and dataset_id and task in ("sequence", "token"):
        eval_results = [EvalResult(task_type=PIPELINE_TAGS[task], dataset_type=dataset_id, dataset_name=dataset,
                                   dataset_split="validation", metric_type="f1",
                                   metric_value=round(float(result["best_dev_f1"]), 4))]
    tags = ["polydistill", stage]
    if stage in ("distill", "lm-distill") or prov.is_student:
        tags.append("knowledge-distillation")
    export = prov.get("export") if stage == "export" else None
    export_format = str(export.get("format", "onnx")) if isinstance(export, dict) else "onnx"
    if isinstance(export, dict):
        tags.append(export_format)
        if str(export.get("quantization", "")).startswith("int8"):
            tags.append("int8")
        if export.get("precision") == "bf16":
            tags.append("bf16")
    if prov.init:
        tags.append(prov.init)
    card_data = ModelCardData(
        model_name=name, base_model=base_model if base_model and not Path(base_model).is_absolute() else None,
        language=languages or None, datasets=[dataset_id] if dataset_id else None,
        metrics=["f1"] if eval_results else None, eval_results=eval_results,
        pipeline_tag=PIPELINE_TAGS.get(task),
        library_name=_EXPORT_LIBRARY.get(export_format, "onnx") if stage == "export" else "transformers",
        license=_front_matter_license(source) or _front_matter_license(prov.teacher), tags=tags,
    )
    made_from = source if stage == "export" and source else base_model  # an export names the exported directory
    body = "\n".join(_prose(stage, prov, run, made_from, languages, result))
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}\n")


def _prose(stage, prov: Provenance, run, base_model, languages, result) -> list[str]:
    lines = [f"# {Path(base_model).name if base_model else 'A model'}: {stage}", ""]
    export = prov.get("export") if stage == "export" else None
    words = _STAGE_WORDS.get(stage, f"made by polydistill {stage}")
    if isinstance(export, dict) and export.get("format", "onnx") != "onnx":
        words = f"exported with `polydistill export --runtime` as {export.get('runtime')}"
    lines.append(f"This model was {words}"
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
            lines += [f"## {step.replace('_', ' ')}", "", *_STEP_PROSE.get(step, lambda _: [])(record),
                      *_record_lines(record), ""]
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


def _pct(part, whole) -> str:
    return f"{100 * part / whole:.1f} %" if part is not None and whole else "–"


def _vocab_reduction_prose(record: dict[str, Any]) -> list[str]:
    """VocabReduce in words: sizes before / after, coverage per language, sources, the fallback."""
    if "vocab_before" not in record or "vocab_after" not in record:
        return []
    lines = ["| | before | after | after / before |", "|---|---|---|---|",
             f"| vocabulary | {record['vocab_before']:,} | {record['vocab_after']:,} | "
             f"{_pct(record['vocab_after'], record['vocab_before'])} |"]
    for key, name in (("params", "parameters"), ("embedding_params", "word-embedding parameters")):
        before, after = record.get(f"{key}_before"), record.get(f"{key}_after")
        if before is not None and after is not None:
            lines.append(f"| {name} | {before:,} | {after:,} | {_pct(after, before)} |")
    lines.append("")
    coverage = [row for row in record.get("coverage") or [] if row.get("token_coverage") is not None]
    if coverage:
        lines += ["Held-out text tokenised exactly as with the full vocabulary (planned before writing):", "",
                  "| language | sentences | token coverage | sentence coverage | tokens / sentence before → after |",
                  "|---|---|---|---|---|"]
        for row in coverage:
            before, after = row.get("tokens_per_sentence_before"), row.get("tokens_per_sentence_after")
            lines.append(f"| {row['language']} | {row.get('sentences', 0):,} | {_pct(row['token_coverage'], 1)} | "
                         f"{_pct(row.get('sentence_coverage'), 1)} | "
                         + (f"{before:.2f} → {after:.2f} |" if before is not None and after is not None else "– |"))
        lines.append("")
    for source in record.get("sources") or []:
        lines.append(f"- source ({source.get('language')}): {source.get('description')}, {source.get('size', 0):,} "
                     f"{source.get('unit', '')}; rule: {source.get('rule')}; {source.get('selected', 0):,} sub-words "
                     "selected.")
    if record.get("keep_text"):
        lines.append(f"- always kept: the pieces of {', '.join(repr(t) for t in record['keep_text'])}.")
    if record.get("fallback"):
        lines.append(f"- text outside the kept vocabulary: {record['fallback']}.")
    return [*lines, ""] if lines[-1] else lines


def _export_prose(record: dict[str, Any]) -> list[str]:
    """The ONNX export in words: file, quantisation, sizes, the check against PyTorch, how to run it
    (a PyTorch or OpenVINO export of ``export --runtime``: how to load it)."""
    if record.get("format", "onnx") == "safetensors":
        return [f"{record.get('dtype', '')} safetensors; load with `AutoModel…from_pretrained(\".\")` (dtype from "
                "config.json).", ""]
    if record.get("format") == "openvino":
        return [f"OpenVINO IR `{record.get('file')}` ({record.get('precision')}); load with "
                "`openvino.Core().read_model(...)` or optimum-intel's `OVModelFor…from_pretrained(\".\")`.", ""]
    check = record.get("check") or {}
    sizes = [f"{record[key] / 1e6:.1f} MB {what}" for key, what in (
        ("onnx_bytes", f"`{record.get('file', 'model.onnx')}`"), ("onnx_fp32_bytes", "fp32 ONNX"),
        ("source_weights_bytes", "source weights")) if record.get(key)]
    agreement = (f", argmax agreement {100 * check['argmax_agreement']:.1f} %" if "argmax_agreement" in check
                 else f", min cosine {check['min_cosine']:.4f}" if "min_cosine" in check else "")
    quantized = str(record.get("quantization", "none")).startswith("int8")
    kind = f"int8, {record['quantization'].removeprefix('int8-')} quantisation" if quantized else "fp32"
    lines = [f"`{record.get('file', 'model.onnx')}` ({kind}, opset {record.get('opset')}) was exported with "
             f"{record.get('exporter', 'torch.onnx')} and runs with onnxruntime {record.get('onnxruntime', '')}; "
             f"{', '.join(sizes)}."]
    if check:
        lines.append(f"Against the PyTorch model on {check.get('sentences')} sentences: max |difference| "
                     f"{check.get('max_abs_diff', float('nan')):.2g}{agreement}.")
    lines += ["", "```python", "import onnxruntime as ort", "from transformers import AutoTokenizer", "",
              'tokenizer = AutoTokenizer.from_pretrained(".")  # this directory',
              f'session = ort.InferenceSession("{record.get("file", "model.onnx")}")',
              'batch = tokenizer(["Hello world"], return_tensors="np")',
              f"{record.get('output', 'logits')} = session.run(None, {{i.name: batch[i.name] for i in "
              "session.get_inputs()})[0]",
              "```", ""]
    return lines


_STEP_PROSE = {"vocab_reduction": _vocab_reduction_prose, "export": _export_prose}


def _record_lines(record: dict[str, Any]) -> list[str]:
    return [f"- {key}: {value}" for key, value in record.items()
            if not isinstance(value, dict | list) or len(str(value)) < 200]


def write_card(out: str | Path, stage: str, provenance: Provenance | None, run: dict[str, Any] | None = None,
               source: str | None = None) -> Path:
    card = build_card(stage, provenance, run, source)
    return atomic_write_text(Path(out) / CARD_FILE, str(card))
