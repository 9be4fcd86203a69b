"""``export_model``: a polydistill (or any supported Hugging Face) model directory → ONNX, fp32 or int8.

Exporter: ``torch.onnx.export`` with the TorchScript tracer (``dynamo=False``), dynamic ``batch`` and
``sequence`` axes, eager attention. optimum's exporter (optimum-onnx 0.1.0) needs transformers < 4.58
and does not import with transformers 5; the dynamo exporter works too (``exporter="dynamo"``, needs
onnxscript) but is ~10× slower to export. Quantisation uses onnxruntime: dynamic int8 (weights int8
per channel, activations uint8 quantised at run time; the settings of optimum's ``avx512_vnni``
config) or, with calibration data, static int8 (QDQ format, activation ranges from a few hundred
tokenised examples, MinMax).

The output directory holds one model: ``model.onnx`` (the int8 model when quantised, else fp32),
``config.json``, the tokenizer files, ``run.json`` when the source has one (its training record, so
evaluation groups seen / unseen languages the same way), ``polydistill.json`` with an ``export``
record and a ``README.md`` model card.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from polydistill.architectures import count_parameters, get_adapter, task_of
from polydistill.errors import PolydistillError, require
from polydistill.export import ONNX_FILE
from polydistill.export.machine import machine_profile
from polydistill.export.runtime import OPENVINO_FILE, onnx_files, require_runtime, session_options
from polydistill.hub import push_model_dir
from polydistill.io import RUN_FILE, WEIGHT_SUFFIXES, check_output_dir, package_versions
from polydistill.modeling import load_config, load_model, load_tokenizer, quiet_loading

QUANTIZATIONS = ("int8", "none")
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = 17
# Traced with padding (so the mask path is in the graph) and checked on other, longer sentences.
TRACE_SENTENCES = ["Hello world, this is a test.", "Bonjour !"]
CHECK_SENTENCES = [
    "The weather in Paris is lovely today, isn't it?",
    "Wie spät ist es in Berlin?",
    "Ponme una alarma a las siete de la mañana, por favor, y apaga las luces de la cocina.",
    "Habari ya asubuhi",
    "Ceci est une phrase un peu plus longue que les autres pour vérifier les longueurs dynamiques du modèle.",
    "ok",
]


@dataclass
class ExportResult:
    path: Path
    record: dict[str, Any]


@dataclass
class Calibration:
    """Static-quantisation calibration inputs: tokenised examples and where they came from."""

    batches: list[dict[str, Any]]  # one example each: {input name: int64 array of shape [1, length]}
    record: dict[str, Any]


def _versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "onnxscript"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _traceable(model, names: list[str], output: str):
    """What the exporter sees: ``forward(input_ids, attention_mask[, token_type_ids])`` → one output tensor."""
    import torch

    with_types = "token_type_ids" in names

    class Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if with_types:
                inputs["token_type_ids"] = token_type_ids
            return getattr(self.model(**inputs, return_dict=True), output)

    return Traced().eval()


def _input_names(model, tokenizer) -> list[str]:
    accepted = set(inspect.signature(model.forward).parameters)
    produced = set(getattr(tokenizer, "model_input_names", None) or ["input_ids", "attention_mask"])
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in produced and "token_type_ids" in accepted and getattr(model.config, "type_vocab_size", None):
        names.append("token_type_ids")
    return names


def _encode(tokenizer, sentences: list[str], names: list[str], max_length: int) -> dict[str, Any]:
    enc = tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    out = {}
    for name in names:
        out[name] = enc[name] if name in enc else (enc["input_ids"] * 0)
    return out


def _consolidate_external_data(path: Path) -> None:
    """One weights file beside ``path`` (``model.onnx_data``) instead of one file per tensor, which is
    what the tracer writes for a model over protobuf's 2 GB limit."""
    import onnx

    folder = path.parent
    extra = [p for p in folder.iterdir() if p != path]
    if not extra:
        return
    model = onnx.load(str(path), load_external_data=True)
    for p in extra:
        if p.is_file():
            p.unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{path.name}_data", size_threshold=1024)


def trace_to_onnx(model, task: str, names: list[str], output: str, tokenizer, limit: int, path: Path, opset: int,
                  exporter: str) -> None:
    """``model`` traced on :data:`TRACE_SENTENCES` into the ONNX file ``path`` (weights in one external
    data file); an exporter failure is one sentence."""
    try:
        _torch_export(model, task, names, output, _encode(tokenizer, TRACE_SENTENCES, names, limit), path, opset,
                      exporter)
    except PolydistillError:
        raise
    except Exception as err:
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PolydistillError(f"torch.onnx could not export this {type(model).__name__} ({detail}); try "
                               "another --opset or --exporter.") from err
    _consolidate_external_data(path)


def _torch_export(model, task: str, names: list[str], output: str, sample: dict[str, Any], path: Path, opset: int,
                  exporter: str) -> None:
    import torch

    wrapper = _traceable(model, names, output)
    args = tuple(sample[name] for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch"} if task == "sequence" else {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python values in the graph; checked below
        if exporter == "dynamo":
            require_runtime("onnxscript")
            batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
            program = torch.onnx.export(wrapper, args, dynamo=True, verbose=False, input_names=names, output_names=[output],
                                        opset_version=max(opset, 18),  # its lowest implemented opset
                                        dynamic_shapes=tuple({0: batch, 1: sequence}
                                                                                   for _ in names))
            assert program is not None
            program.save(str(path))
        else:
            torch.onnx.export(wrapper, args, str(path), dynamo=False, input_names=names, output_names=[output],
                              opset_version=opset, dynamic_axes=axes, do_constant_folding=True)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared batches."""

    def __init__(self, batches: list[dict[str, Any]], wanted: list[str]) -> None:
        self._items = iter([{k: v for k, v in batch.items() if k in wanted} for batch in batches])

    def get_next(self):
        return next(self._items, None)


def prepare_calibration(data, tokenizer, names: list[str] | None = None, examples: int = 256,
                        max_length: int = 128, seed: int = 0) -> Calibration:
    """``examples`` tokenised examples of ``data`` (a :class:`~polydistill.data.types.TaskData`), drawn
    with ``seed`` from its train split (else validation, else test), one example a batch, no padding."""
    import numpy as np

    from polydistill.data.tokenize import tokenize_task_data
    from polydistill.data.types import TaskData

    require(examples >= 1, f"Calibration needs at least 1 example, got {examples}.")
    split = next((s for s in ("train", "validation", "test") if s in data.splits and len(data.splits[s])), None)
    require(split is not None, f"The calibration data {data.name} has no examples; choose other languages or data.")
    ds = data.splits[split].shuffle(seed=seed).select(range(min(examples, len(data.splits[split]))))
    from datasets import DatasetDict

    view = TaskData(name=data.name, task=data.task, label_names=data.label_names, splits=DatasetDict({split: ds}),
                    languages=data.languages, source=data.source)
    encoded = tokenize_task_data(view, tokenizer, max_length=max_length)[split]
    names = names or ["input_ids", "attention_mask", "token_type_ids"]
    batches = []
    for row in encoded:
        ids = np.asarray([row["input_ids"]], dtype=np.int64)
        batch = {"input_ids": ids,
                 "attention_mask": np.asarray([row.get("attention_mask") or [1] * ids.shape[1]], dtype=np.int64)}
        batch["token_type_ids"] = np.asarray([row.get("token_type_ids") or [0] * ids.shape[1]], dtype=np.int64)
        batches.append({k: v for k, v in batch.items() if k in names})
    record = {"dataset": data.name, "split": split, "languages": list(data.languages), "examples": len(batches),
              "seed": seed, "max_length": max_length, "method": "MinMax"}
    return Calibration(batches, record)


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantiser logs a "consider pre-processing" warning on the root logger; its
    pre-processing (symbolic shape inference) does not complete on these graphs, so it is skipped."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)


def _quantize(fp32: Path, out: Path, calibration: Calibration | None, per_channel: bool,
              fused: bool = False) -> dict[str, Any]:
    with _quiet_root_logger():
        return _quantize_onnx(fp32, out, calibration, per_channel, fused)


def _quantize_onnx(fp32: Path, out: Path, calibration: Calibration | None, per_channel: bool,
                   fused: bool = False) -> dict[str, Any]:
    """``fused``: the graph holds onnxruntime's contrib operators (Attention, SkipLayerNormalization), whose
    outputs ONNX shape inference cannot type; their float type is then given to the quantiser."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    external = any(p != fp32 for p in fp32.parent.iterdir())
    typed: dict[str, Any] = {"DefaultTensorType": onnx.TensorProto.FLOAT} if fused else {}
    if calibration is None:
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=per_channel,
                         reduce_range=False, use_external_data_format=external, extra_options=typed or None)
        return {"mode": "dynamic", "weights": "int8", "activations": "uint8 (dynamic, per batch)",
                "per_channel": per_channel, "reduce_range": False, "operators": "all onnxruntime integer ops "
                "(MatMul, Gather, ...)"}
    wanted = [i.name for i in onnx.load(str(fp32), load_external_data=False).graph.input]
    # MatMuls with a weight matrix (MatMulConstBOnly) and the embedding Gathers: the attention products
    # and LayerNorm / softmax / GELU stay in float, as in dynamic quantisation.
    quantize_static(str(fp32), str(out), _Reader(calibration.batches, wanted), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul", "Gather"], per_channel=per_channel, reduce_range=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, use_external_data_format=external,
                    extra_options={"MatMulConstBOnly": True, **typed})
    return {"mode": "static", "weights": "int8", "activations": "uint8 (static ranges, QDQ)",
            "per_channel": per_channel, "reduce_range": False, "operators": "MatMul (weights), Gather",
            "calibration": calibration.record}


def _check(model, session, tokenizer, names: list[str], output: str, quantized: bool, max_length: int) -> dict[str, Any]:
    """Compare the ONNX model with the PyTorch model on sentences other than the traced ones."""
    import numpy as np
    import torch

    batch = _encode(tokenizer, CHECK_SENTENCES, names, max_length)
    with torch.no_grad():
        reference = getattr(model(**batch, return_dict=True), output).float().numpy()
    feeds = {i.name: batch[i.name].numpy() for i in session.get_inputs()}
    got = session.run([output], feeds)[0]
    mask = batch["attention_mask"].numpy().astype(bool)
    if output == "logits" and reference.ndim == 2:
        ref_rows, got_rows = reference, got
    else:
        ref_rows, got_rows = reference[mask], got[mask]
    result = {"sentences": len(CHECK_SENTENCES), "max_abs_diff": float(np.abs(ref_rows - got_rows).max())}
    if output == "logits":
        result["argmax_agreement"] = float((ref_rows.argmax(-1) == got_rows.argmax(-1)).mean())
    else:
        cos = (ref_rows * got_rows).sum(-1) / (np.linalg.norm(ref_rows, axis=-1) * np.linalg.norm(got_rows, axis=-1)
                                               + 1e-12)
        result["min_cosine"] = float(cos.min())
    if not quantized and result["max_abs_diff"] > 1e-3:
        raise PolydistillError(f"The fp32 ONNX export differs from the PyTorch model by {result['max_abs_diff']:.2g} "
                               "(more than 1e-3); this architecture does not trace faithfully, please report it.")
    return result


@dataclass
class SourceModel:
    """The fp32 PyTorch model a runtime candidate is made from, with what the exporters need."""

    source: str
    path: Path
    model: Any  # eager attention (the traced graph), fp32, eval
    tokenizer: Any
    task: str
    names: list[str]  # ONNX input names
    output: str  # logits | last_hidden_state
    limit: int  # position limit
    weights_bytes: int | None

    @property
    def config(self):
        return self.model.config


def source_checks(source: str | os.PathLike) -> None:
    """A model to export must be a PyTorch model directory (or hub id), not an export."""
    path = Path(str(source)).expanduser()
    exported = (onnx_files(path) or (path / OPENVINO_FILE).is_file()) if path.is_dir() else False
    if exported and not any(path.glob("*.safetensors")):
        raise PolydistillError(f"{source} is already an exported model (ONNX or OpenVINO); export the PyTorch model "
                               "directory it was made from.")


def load_source(source: str | os.PathLike) -> SourceModel:
    """The fp32 model of ``source`` (a model directory or hub id of a supported architecture)."""
    source_checks(source)
    config = load_config(source)
    adapter = get_adapter(config)  # an unsupported architecture is refused by name
    task = task_of(config)
    tokenizer = load_tokenizer(source)
    with quiet_loading():
        model = load_model(source, task, config=config, attn_implementation="eager").float().eval()
    path = Path(str(source)).expanduser()
    weights = sum(p.stat().st_size for p in path.glob("*") if p.name.endswith(WEIGHT_SUFFIXES)) \
        if path.is_dir() else None
    return SourceModel(str(source), path, model, tokenizer, task, _input_names(model, tokenizer),
                       "last_hidden_state" if task == "base" else "logits",
                       adapter.position_limit(model.config) or 512, weights)


def _check_export_options(quantize: str, exporter: str, calibration_data, opset: int) -> None:
    """Refuse an unknown quantization or exporter, calibration data without int8, or an unsupported opset."""
    require(quantize in QUANTIZATIONS, f"Unknown quantization {quantize!r}; choose int8 or none.")
    require(exporter in EXPORTERS, f"Unknown exporter {exporter!r}; choose {' or '.join(EXPORTERS)}.")
    require(calibration_data is None or quantize == "int8",
            "Calibration data is for int8 quantization; drop --calibration-data or use --quantize int8.")
    require(14 <= opset <= 20, f"ONNX opset {opset} is not supported here; use 14 to 20 (default {DEFAULT_OPSET}).")


def _write_onnx(src: SourceModel, folder: Path, quantize: str, calibration: Calibration | None, per_channel: bool,
                opset: int, exporter: str) -> tuple[int, int, dict[str, Any] | None]:
    """Trace ``src`` into ``folder``/model.onnx, int8 or fp32: (fp32 bytes, ONNX bytes, quantisation settings)."""
    scratch = folder / ".fp32"
    scratch.mkdir()
    fp32 = scratch / ONNX_FILE
    trace_to_onnx(src.model, src.task, src.names, src.output, src.tokenizer, src.limit, fp32, opset, exporter)
    fp32_bytes = sum(p.stat().st_size for p in scratch.iterdir())
    final = folder / ONNX_FILE
    quantization: dict[str, Any] | None = None
    if quantize == "int8":
        quantization = _quantize(fp32, final, calibration, per_channel)
    else:
        for p in scratch.iterdir():
            p.rename(folder / p.name)
    shutil.rmtree(scratch)
    onnx_bytes = sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith(ONNX_FILE))
    return fp32_bytes, onnx_bytes, quantization


def _check_onnx(src: SourceModel, final: Path, quantized: bool) -> dict[str, Any]:
    """Load ``final`` in onnxruntime and compare it with ``src``'s PyTorch model (:func:`_check`)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(final), sess_options=session_options(), providers=["CPUExecutionProvider"])
    return _check(src.model, session, src.tokenizer, src.names, src.output, quantized, src.limit)


def _opset_used(path: Path, default: int) -> int:
    """The default-domain (ai.onnx) opset the ONNX file ``path`` imports, else ``default``."""
    import onnx

    return next((o.version for o in onnx.load(str(path), load_external_data=False).opset_import
                 if o.domain in ("", "ai.onnx")), default)


def _export_record(src: SourceModel, final: Path, opset: int, exporter: str, quantization: dict[str, Any] | None,
                   fp32_bytes: int, onnx_bytes: int, check: dict[str, Any]) -> dict[str, Any]:
    """The ``export`` step's record of polydistill.json, its None entries left out."""
    import onnxruntime as ort

    opset_used = _opset_used(final, opset)
    label = "none" if quantization is None else f"int8-{quantization['mode']}"
    record: dict[str, Any] = {
        "format": "onnx",
        "file": ONNX_FILE,
        "quantization": label,
        "opset": opset_used,
        "exporter": f"torch.onnx.export ({'dynamo' if exporter == 'dynamo' else 'TorchScript tracer'})",
        "onnxruntime": ort.__version__,
        "source": src.source,
        "task": src.task,
        "inputs": src.names,
        "output": src.output,
        "dynamic_axes": ["batch", "sequence"],
        "attention": "eager",
        "source_weights_bytes": src.weights_bytes,
        "onnx_fp32_bytes": fp32_bytes,
        "onnx_bytes": onnx_bytes,
        "parameters": asdict(count_parameters(src.model)),
        "check": check,
        "quantization_settings": quantization,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {**package_versions(), **_versions()},
        "machine": machine_profile().to_dict(),
    }
    return {key: value for key, value in record.items() if value is not None}


def _save_export_dir(target, src: SourceModel, record: dict[str, Any]) -> None:
    """Give ``target`` its provenance, config and tokenizer, and a copy of the source's run.json if it has one."""
    from polydistill.student.provenance import Provenance, read_provenance

    source_dir = src.path
    previous = read_provenance(source_dir) if source_dir.is_dir() else None
    target.provenance = (previous or Provenance()).with_step(
        "export", record, **({} if previous is not None and previous.task else {"task": src.task}))
    config = src.model.config  # the weights are the ONNX file: the directory holds the config alone
    config.architectures = [type(src.model).__name__]
    target.save(config, src.tokenizer)
    if source_dir.is_dir() and (source_dir / RUN_FILE).is_file():
        shutil.copy2(source_dir / RUN_FILE, target.path / RUN_FILE)


def export_model(source: str | os.PathLike, out: str | os.PathLike, *, quantize: str = "int8",
                 calibration_data=None, calibration_examples: int = 256, calibration_max_length: int = 128,
                 seed: int = 0, opset: int = DEFAULT_OPSET, exporter: str = "torchscript", per_channel: bool = True,
                 overwrite: bool = False, push_to_hub: str | None = None, token: str | None = None) -> ExportResult:
    """Export ``source`` (a model directory or hub id: sequence / token classifier or bare encoder of a
    supported architecture) to ``out`` as ONNX; ``quantize="int8"`` (default) quantises it, dynamically
    or, with ``calibration_data`` (a ``TaskData``), statically. ``push_to_hub``: a repo id to upload to."""
    from polydistill.student.model_dir import save_model_dir

    _check_export_options(quantize, exporter, calibration_data, opset)
    require_runtime()
    source_checks(source)
    check_output_dir(out, overwrite)  # before any slow loading
    src = load_source(source)
    calibration = None
    if calibration_data is not None:
        calibration = prepare_calibration(calibration_data, src.tokenizer, src.names, calibration_examples,
                                          min(calibration_max_length, src.limit), seed)
    with save_model_dir(out, "export", source=str(source), overwrite=overwrite, lock=True,
                        expected_bytes=2 * (src.weights_bytes or 0)) as target:
        final = target.path / ONNX_FILE
        fp32_bytes, onnx_bytes, quantization = _write_onnx(src, target.path, quantize, calibration, per_channel,
                                                           opset, exporter)
        check = _check_onnx(src, final, quantize == "int8")
        record = _export_record(src, final, opset, exporter, quantization, fp32_bytes, onnx_bytes, check)
        _save_export_dir(target, src, record)
    if push_to_hub:
        push_model_dir(out, push_to_hub, token=token)
    return ExportResult(Path(out), record)
