"""Model cards (``README.md``) in the Hugging Face Hub's convention, built with ``huggingface_hub``'s
``ModelCard`` / ``ModelCardData``: YAML metadata the Hub shows (base model, languages, datasets,
metrics with a ``model-index``, pipeline tag, licence, tags) and prose saying in words what
``polydistill.json`` and ``run.json`` record.

One builder serves every model polydistill writes: a student straight from weight copy, a
fine-tuned teacher, a distilled student, an lm-distilled student, a vocabulary-reduced model.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from polydistill.io import CARD_FILE, PROVENANCE_FILE, RUN_FILE, atomic_write_text
from polydistill.student.provenance import Provenance

PIPELINE_TAGS = {"sequence": "text-classification", "token": "token-classification", "mlm": "fill-mask",
                 "base": "feature-extraction"}
_HUB_DATASETS = {"massive": "AmazonScience/massive", "massive-slots": "AmazonScience/massive", "tsm": "cardiffnlp/tweet_sentiment_multilingual",
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
    program = Path(sys.argv[0]) if sys.argv else Path()
    if program.name == "polydistill" or (program.name == "__main__.py" and program.parent.name == "polydistill"):
        return shlex.join(["polydistill", *sys.argv[1:]])
    return None


_CACHE_REPO = re.compile(r"models--(?P<id>[^/\\]+)[/\\]snapshots[/\\]")
_MACHINE_PATH = re.compile(r"(?<![\w:/.-])(?:~/|/(?:tmp|root|home|Users|var|mnt|work|data|scratch|private|opt|srv)\b)"
                           r"[^\s`'\"|)\]]*")
_PATH_OPTIONS = ("--out", "-o", "--output", "--work-dir", "--data-root", "--data", "--corpus", "--report",
                 "--unlabelled-data", "--calibration-data", "--cache-dir")
_MAX_LINEAGE = 16


def _card_metadata(model_dir: Path) -> dict[str, Any]:
    """The YAML metadata of a model directory's card (``{}`` when it has none or it is unreadable)."""
    path = model_dir / CARD_FILE
    if not path.is_file():
        return {}
    from huggingface_hub import ModelCard

    try:
        if not path.read_text(encoding="utf-8").startswith("---"):
            return {}  # no metadata block (huggingface_hub would say so on stderr)
        return ModelCard.load(path, ignore_metadata_errors=True).data.to_dict()
    except Exception:  # a card without valid YAML: nothing to inherit
        return {}


def _cached_hub_id(text: str) -> bool:
    """Whether ``text`` is a hub id with a snapshot in the local Hugging Face cache (never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(text, "config.json"), str)
    except Exception:  # not a valid repo id
        return False


def _is_hub_id(text: str) -> bool:
    from polydistill.modeling import is_hub_id

    return is_hub_id(text)


def _snapshot_dir(hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(hub_id, "config.json")
    except Exception:
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def _lineage(sources: list[tuple[Any, str]]) -> list[tuple[str | None, Path | None]]:
    """The models a new model was made from, nearest first: ``(hub id or None, local directory or None)``.

    ``sources`` are ``(name, trust)``: ``"given"`` for what the running command was handed (a hub id it
    loaded, or a directory), ``"card"`` for a card's ``base_model``, ``"recorded"`` for names in
    ``polydistill.json`` / ``run.json`` (a relative path there may name anything by now: accepted as a hub
    id only when that id is in the local cache). A local directory is followed to what it was made from
    (its card's ``base_model``, its provenance's teacher, its ``run.json``); a hub id ends the walk."""
    out: list[tuple[str | None, Path | None]] = []
    seen: set[str] = set()
    queue = [(str(name), trust) for name, trust in sources if name]
    while queue and len(out) < _MAX_LINEAGE:
        text, trust = queue.pop(0)
        if text in seen:
            continue
        seen.add(text)
        path = Path(text).expanduser()
        if path.is_dir():
            seen.add(str(path.resolve()))
            match = _CACHE_REPO.search(path.resolve().as_posix())
            if match:  # a snapshot in the Hugging Face cache: the hub id it was downloaded as
                out.append((match["id"].replace("--", "/"), path))
                continue
            out.append((None, path))
            base = _card_metadata(path).get("base_model")
            for name in base if isinstance(base, list) else [base]:
                if isinstance(name, str):
                    queue.append((name, "card"))
            prov = _read_json(path / PROVENANCE_FILE)
            run = _read_json(path / RUN_FILE)
            queue += [(name, "recorded") for name in (prov.get("teacher"), run.get("source"), run.get("teacher"))
                      if isinstance(name, str) and name]
            continue
        if not _is_hub_id(text):
            continue  # a path that is gone (or never was): nothing to learn from it
        if trust == "given" or _cached_hub_id(text) or (trust == "card" and "/" in text):
            out.append((text, _snapshot_dir(text)))
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _inherited(lineage: list[tuple[str | None, Path | None]], key: str) -> Any:
    """The first value of ``key`` in the cards along ``lineage`` (nearest model first)."""
    for _, path in lineage:
        if path is not None:
            value = _card_metadata(path).get(key)
            if value:
                return value
    return None


def _languages(codes: list[str]) -> list[str]:
    from polydistill.data.languages import iso_language

    return sorted({iso for code in codes if (iso := iso_language(code))})


def _looks_local(text: str, hub_ids: set[str]) -> bool:
    """Whether a string names a file or directory of this machine rather than a hub id or a plain value."""
    if text in hub_ids:
        return False
    path = Path(text).expanduser()
    if text.startswith(("/", ".", "~")) or path.is_absolute():
        return True
    try:
        if path.exists() and text not in ("-",):
            return True
    except OSError:
        return False
    if any(c.isspace() for c in text):  # prose, not a path (paths with spaces are caught above when they exist)
        return False
    return ("/" in text or "\\" in text) and not _cached_hub_id(text)


def _public_command(command: str, hub_ids: set[str]) -> str:
    """The command line with every local path replaced by a placeholder named after its option."""
    try:
        words = shlex.split(command)
    except ValueError:
        return "polydistill ..."
    out: list[str] = []
    previous = ""
    for word in words:
        option, eq, value = word.partition("=") if word.startswith("--") else ("", "", word)
        text = value if eq else word
        if not (word.startswith("-") and not eq) and (
                previous in _PATH_OPTIONS or (eq and option in _PATH_OPTIONS) or _looks_local(text, hub_ids)):
            name = (option if eq else previous if previous.startswith("--") else "--model").lstrip("-")
            placeholder = name.upper().replace("-", "_") or "PATH"
            out.append(f"{option}={placeholder}" if eq else placeholder)
        else:
            out.append(word)
        previous = word if word.startswith("-") and not eq else ""
    return shlex.join(out).replace("'", "")


def _scrub(text: str, local: list[str]) -> str:
    """Remove the machine paths left in free text: the local directories named, then anything that starts
    like an absolute path of a machine (``/tmp/...``, ``/home/...``, ``~/...``)."""
    for name in sorted({n for n in local if n.startswith(("/", "~"))}, key=len, reverse=True):
        text = text.replace(name, "<local directory>")
    return _MACHINE_PATH.sub("<local path>", text)


def _eval_results(task: str, dataset: str | None, dataset_id: str | None, run: dict[str, Any],
                  inherited: Any, stage: str):
    """``model-index`` entries: test F1 where the command measured it, else the validation F1 (labelled as
    such); an export carries its source model's results, named as measured before export."""
    from huggingface_hub import EvalResult

    result = run.get("result") or {}
    test = run.get("test") or result.get("test") or {}
    if dataset and dataset_id and task in ("sequence", "token"):
        for split, value in (("test", test.get("f1") if isinstance(test, dict) else None),
                             ("validation", result.get("best_dev_f1"))):
            if value is not None:
                return [EvalResult(task_type=PIPELINE_TAGS[task], dataset_type=dataset_id, dataset_name=dataset,
                                   dataset_split=split, metric_type="f1", metric_name=f"{split} F1",
                                   metric_value=round(float(value), 4))]
    if stage == "export" and isinstance(inherited, list):
        return [EvalResult(**{**vars(r), "metric_name": f"{r.metric_name or r.metric_type} (source model, before "
                                                        "export)"}) for r in inherited]
    return None


def card_data(stage: str, provenance: Provenance | None, run: dict[str, Any] | None = None,
              source: str | None = None, existing_files: set[str] | None = None):
    """The one ``ModelCardData`` of a model made by ``stage`` from ``source`` (a model directory or hub id):
    licence and ``base_model`` (a hub id, never a local path) carried along the models it was made from,
    languages, datasets, ``model-index``, pipeline tag, library and tags. Returns ``(data, context)``;
    ``context`` holds what the prose needs (the hub ids and local names seen, the languages)."""
    from huggingface_hub import ModelCardData

    prov = provenance or Provenance()
    run = run or {}
    data = run.get("data") or {}
    task = prov.task if prov.task == "mlm" else (data.get("task") or prov.task or "base")
    given = "given" if stage == "student" else "recorded"
    lineage = _lineage([(source, "given"), (prov.teacher, given), (run.get("teacher"), "given"),
                        (run.get("source"), "given")])
    hub_ids = {hub for hub, _ in lineage if hub}
    base_model = next((hub for hub, _ in lineage if hub), None)
    dataset = data.get("name") if data.get("name") in _HUB_DATASETS else None  # own data: a local folder's name
    dataset_id = _HUB_DATASETS.get(dataset) if dataset else None
    datasets = [dataset_id] if dataset_id else _inherited(lineage, "datasets")
    record = prov.get("vocab_reduction") if stage == "vocab-reduce" else None
    codes = list(data.get("languages") or (record.get("languages") if isinstance(record, dict) else None) or [])
    languages = _languages(codes) or _inherited(lineage, "language")
    from huggingface_hub import ModelCard

    inherited_results = None
    for _, path in lineage[:1]:
        if path is not None and (path / CARD_FILE).is_file() and _card_metadata(path):
            try:
                inherited_results = ModelCard.load(path / CARD_FILE, ignore_metadata_errors=True).data.eval_results
            except Exception:
                inherited_results = None
    eval_results = _eval_results(task, dataset, dataset_id, run, inherited_results, stage)
    tags = ["polydistill", stage]
    if stage in ("distill", "lm-distill") or prov.is_student:
        tags.append("knowledge-distillation")
    if PIPELINE_TAGS.get(task):
        tags.append(PIPELINE_TAGS[task])
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
    if dataset:
        tags.append(str(dataset))
    short = base_model.split("/")[-1] if base_model else "model"
    card = ModelCardData(
        model_name=f"{short}-polydistill-{stage}", base_model=base_model,
        language=languages or None, datasets=datasets or None,
        metrics=sorted({r.metric_type for r in eval_results}) if eval_results else None, eval_results=eval_results,
        pipeline_tag=PIPELINE_TAGS.get(task),
        library_name=_EXPORT_LIBRARY.get(export_format, "onnx") if stage == "export" else "transformers",
        license=_inherited(lineage, "license"), tags=list(dict.fromkeys(tags)),
    )
    local = [str(path) for _, path in lineage if path is not None]
    local += [str(path.resolve()) for _, path in lineage if path is not None]
    local += [str(s) for s in (source, prov.teacher, prov.base, run.get("teacher"), run.get("source")) if s]
    context = {"base_model": base_model, "direct": bool(lineage) and lineage[0][0] is not None,
               "hub_ids": hub_ids, "local": local, "languages": languages or [], "files": existing_files}
    return card, context


def build_card(stage: str, provenance: Provenance | None, run: dict[str, Any] | None = None,
               source: str | None = None, existing_files: set[str] | None = None):
    """The ``ModelCard`` of a model made by ``stage`` from ``source`` (a model directory or hub id)."""
    from huggingface_hub import ModelCard

    prov = provenance or Provenance()
    run = run or {}
    data, context = card_data(stage, prov, run, source, existing_files)
    body = "\n".join(_prose(stage, prov, run, context, (run.get("result") or {})))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_scrub(body, context['local'])}\n")


def _dataset_words(name: Any) -> str:
    return f"{name} (`{_HUB_DATASETS[name]}`)" if name in _HUB_DATASETS else "own data (a local folder)"


def _public_name(name: str | None, context: dict[str, Any]) -> str | None:
    """A model name fit for a card: a hub id as is, a local directory as the hub id it came from (or None)."""
    if not name:
        return None
    if name in context["hub_ids"]:
        return name
    return None if _looks_local(name, context["hub_ids"]) else name


def _prose(stage, prov: Provenance, run, context: dict[str, Any], result) -> list[str]:
    base_model = context["base_model"]
    languages = context["languages"]
    lines = [f"# {base_model.split('/')[-1] if base_model else 'A model'}: {stage}", ""]
    export = prov.get("export") if stage == "export" else None
    words = _STAGE_WORDS.get(stage, f"made by polydistill {stage}")
    if isinstance(export, dict) and export.get("format", "onnx") != "onnx":
        words = f"exported with `polydistill export --runtime` as {export.get('runtime')}"
    if base_model and context.get("direct"):
        origin = f" from `{base_model}`."
    elif base_model:
        origin = f" from a local model that descends from `{base_model}` (Hugging Face Hub)."
    else:
        origin = " from a local model."
    lines.append(f"This model was {words}{origin}")
    lines.append("")
    if prov.is_student:
        lines += ["## How the student was built", "", *_student_lines(prov, context), ""]
    data = run.get("data") or {}
    if data:
        lines += ["## Training data", "",
                  f"- **Dataset:** {_dataset_words(data.get('name'))} ({data.get('task')}), {data.get('train', '?')} "
                  f"training and "
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
                      *_record_lines(record, context), ""]
    command = run.get("command")
    if command:
        lines += ["## Reproduce", "", f"```bash\n{_public_command(command, context['hub_ids'])}\n```", ""]
    files = context.get("files")
    named = [f"`{name}`" for name in (PROVENANCE_FILE, RUN_FILE) if files is None or name in files]
    if named:
        lines.append(f"The full record is in {' and '.join(named)}.")
    return lines


def _student_lines(prov: Provenance, context: dict[str, Any]) -> list[str]:
    width, sizes = prov.width or {}, prov.teacher_sizes or {}
    lines = [f"- **Initialisation:** `{prov.init}`: {_INIT_WORDS.get(prov.init or '', prov.init)}."]
    base = _public_name(prov.base, context)
    if base:
        lines.append(f"- **Base model:** `{base}`.")
    elif prov.base:
        lines.append("- **Base model:** a local checkpoint.")
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
        description = source.get("description")
        if isinstance(description, str) and any(_looks_local(part.strip(), set()) for part in description.split(";")):
            description = "a text corpus (local file)"
        lines.append(f"- source ({source.get('language')}): {description}, {source.get('size', 0):,} "
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


def _record_lines(record: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """The record's short fields; a local path (the ``source`` directory, a corpus file) is left out."""
    return [f"- {key}: {_public_value(value, context)}" for key, value in record.items()
            if (not isinstance(value, dict | list) or len(str(value)) < 200)
            and not (isinstance(value, str) and _looks_local(value, context["hub_ids"]))]


def _public_value(value: Any, context: dict[str, Any]) -> Any:
    """``value`` with every string that names a local file or directory (at any depth) replaced by a word."""
    if isinstance(value, str):
        return "a local file" if _looks_local(value, context["hub_ids"]) else value
    if isinstance(value, dict):
        return {k: _public_value(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_public_value(v, context) for v in value]
    return value


def write_card(out: str | Path, stage: str, provenance: Provenance | None, run: dict[str, Any] | None = None,
               source: str | None = None) -> Path:
    """Write ``out/README.md``; call it after ``polydistill.json`` / ``run.json`` are in ``out`` (an export
    names the ``run.json`` it copies from its source too)."""
    files = {p.name for p in Path(out).iterdir()} if Path(out).is_dir() else set()
    if stage == "export" and source is not None:
        try:
            from polydistill.modeling import resolve_model_dir

            if (resolve_model_dir(source) / RUN_FILE).is_file():
                files.add(RUN_FILE)
        except Exception:  # the source cannot be found again: say nothing about its run.json
            pass
    card = build_card(stage, provenance, run, source, existing_files=files)
    return atomic_write_text(Path(out) / CARD_FILE, str(card))


def record_test_results(model_dir: str | Path, report: dict[str, Any], model: str) -> None:
    """Put the test F1 a command measured into ``model_dir``'s card: the ``model-index`` then holds the
    test split's numbers (overall per language group and per language, the dataset's config being the
    language) in place of the training run's validation F1. ``report`` is compress's ``report.json``
    (``quality.models[model]``); nothing changes when it has no test F1 for ``model``."""
    from huggingface_hub import EvalResult, ModelCard

    path = Path(model_dir) / CARD_FILE
    quality = report.get("quality") or {}
    scores = (quality.get("models") or {}).get(model) or {}
    dataset, task = report.get("dataset"), report.get("task")
    if not path.is_file() or not scores or dataset not in _HUB_DATASETS or task not in ("sequence", "token"):
        return
    split = str(quality.get("split") or "test")
    groups = quality.get("groups") or {}

    def result(value: float, name: str, config: str | None = None) -> EvalResult:
        return EvalResult(task_type=PIPELINE_TAGS[task], dataset_type=_HUB_DATASETS[dataset], dataset_name=dataset,
                          dataset_config=config, dataset_split=split, metric_type="f1", metric_name=name,
                          metric_value=round(float(value), 4))

    results = [result(value, f"{split} F1, {group} languages ({' '.join(groups.get(group) or [])})")
               for group, value in (scores.get("groups") or {}).items() if value is not None]
    results += [result(value, f"{split} F1, {language}", language)
                for language, value in (scores.get("per_language") or {}).items() if value is not None]
    if not results:
        return
    card = ModelCard.load(path, ignore_metadata_errors=True)
    card.data.eval_results = results
    card.data.metrics = ["f1"]
    card.data.datasets = [_HUB_DATASETS[dataset]]
    card.data.model_name = card.data.model_name or "polydistill-compress"
    atomic_write_text(path, str(card))


def public_report(report: dict[str, Any]) -> dict[str, Any]:
    """compress's report with the machine paths a card must not show replaced: the teacher by the hub id it
    came from (or words), the output directories by their place in the command's output (``DIR/...``)."""
    lineage = _lineage([(report.get("teacher"), "given")])
    teacher = next((hub for hub, _ in lineage if hub), None) or "a local model"
    outputs = {key: f"DIR/{Path(str(value)).name}" for key, value in (report.get("outputs") or {}).items()}
    return {**report, "teacher": teacher, "outputs": outputs}
