"""Runtime candidates: one model directory written in the standard form of each runtime that can serve it.

=====================  =========================================================================  ==========================
runtime                what is written                                                            loaded by
=====================  =========================================================================  ==========================
``torch-fp32``         HF directory, fp32 safetensors                                             ``AutoModelFor…``
``torch-bf16``         HF directory, bf16 safetensors (``config.dtype = bfloat16``)               ``AutoModelFor…``
``onnx-fp32``          ``model.onnx`` after ONNX Runtime's transformer fusion (Attention,         ``InferenceSession``,
                       SkipLayerNormalization, BiasGelu; ``onnxruntime.transformers.optimizer``)  optimum's ``ORTModelFor…``
``onnx-int8``          the fused graph, dynamic int8 (``quantize_dynamic``: QAttention, ...)     same
``onnx-int8-unfused``  the traced graph, dynamic int8: what ``export --quantize int8`` ships;     same
                       onnxruntime still fuses LayerNorm / GELU when it loads it
``onnx-int8-static``   the fused graph, static int8 QDQ u8s8 calibrated on task data              same
``openvino``           ``openvino_model.xml/.bin`` (fp32 IR; the CPU plugin runs it in bf16 on    ``Core().read_model``,
                       AMX / AVX-512 BF16 CPUs by default)                                        optimum-intel ``OVModelFor…``
``openvino-int8``      IR of the unfused graph quantised static int8 QDQ (OpenVINO runs QDQ as    same
                       int8 FakeQuantize); NNCF is not used
=====================  =========================================================================  ==========================

:func:`plan_candidates` says which runtimes ``--runtime auto`` measures on a machine (and why the others
are skipped), :class:`CandidateBuilder` writes them (the traced ONNX graph, its fused form and the
calibration are shared), :func:`load_runtime_dir` loads any of them behind a transformers model's calling
convention, :func:`compare_outputs` compares a candidate with the fp32 PyTorch model on texts, and
:func:`export_runtime` is ``polydistill export --runtime NAME`` for one named runtime (``auto`` — timing
the candidates side by side — is :func:`polydistill.bench.select.export_auto`, a level above).
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from polydistill.architectures import count_parameters, task_of
from polydistill.errors import PolydistillError, require
from polydistill.export import ONNX_FILE
from polydistill.export.convert import (
    CHECK_SENTENCES,
    EXPORTERS,
    ExportResult,
    SourceModel,
    _quantize,
    _quiet_root_logger,
    _versions,
    load_source,
    prepare_calibration,
    trace_to_onnx,
)
from polydistill.export.machine import MachineProfile, machine_profile
from polydistill.export.runtime import (
    OPENVINO_FILE,
    ExportedModel,
    is_exported_dir,
    load_exported,
    recorded_parameter_counts,
    require_runtime,
)
from polydistill.hub import push_model_dir
from polydistill.io import RUN_FILE, check_output_dir, package_versions
from polydistill.modeling import load_config, load_model
from polydistill.student.model_dir import ModelDir, save_model_dir
from polydistill.student.provenance import Provenance, read_provenance

AUTO = "auto"
RUNTIMES = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "onnx-int8-unfused", "onnx-int8-static", "openvino",
            "openvino-int8")
OPENVINO_HINT = "pip install polydistill[openvino]"


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    format: str  # safetensors | onnx | openvino
    precision: str  # fp32 | bf16 | int8-dynamic | int8-static
    calibrated: bool = False  # needs calibration data
    package: str | None = None  # the optional package it needs
    fused: bool = True  # ONNX: after onnxruntime's transformer fusion


SPECS = {
    "torch-fp32": RuntimeSpec("torch-fp32", "safetensors", "fp32"),
    "torch-bf16": RuntimeSpec("torch-bf16", "safetensors", "bf16"),
    "onnx-fp32": RuntimeSpec("onnx-fp32", "onnx", "fp32", package="onnxruntime"),
    "onnx-int8": RuntimeSpec("onnx-int8", "onnx", "int8-dynamic", package="onnxruntime"),
    # the status quo, measured beside the fused graph: on an AVX2 EPYC (12 heads of 16 dims) the fused
    # Attention kernel was ~6 % slower at b32 L128 than onnxruntime's own session-level fusions
    "onnx-int8-unfused": RuntimeSpec("onnx-int8-unfused", "onnx", "int8-dynamic", package="onnxruntime", fused=False),
    "onnx-int8-static": RuntimeSpec("onnx-int8-static", "onnx", "int8-static", calibrated=True, package="onnxruntime"),
    "openvino": RuntimeSpec("openvino", "openvino", "fp32", package="openvino"),
    "openvino-int8": RuntimeSpec("openvino-int8", "openvino", "int8-static", calibrated=True, package="openvino"),
}


def parse_runtimes(text: str | Sequence[str], allow_auto: bool = False) -> list[str]:
    """``"torch-fp32,onnx-int8"`` → the runtime names, checked, in order, without repeats."""
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    require(bool(parts), f"No runtime given; choose from {', '.join(RUNTIMES)}.")
    known = (*RUNTIMES, AUTO) if allow_auto else RUNTIMES
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise PolydistillError(f"Unknown runtime {unknown[0]!r}; choose from {', '.join(known)}.")
    require(AUTO not in parts or parts == [AUTO], "--runtime auto cannot be combined with named runtimes; use "
            "--candidates to choose what auto measures.")
    return list(dict.fromkeys(parts))


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def plan_candidates(profile: MachineProfile, *, calibration: bool, requested: Sequence[str] | None = None,
                    is_installed: Callable[[str], bool] = installed) -> tuple[list[str], dict[str, str]]:
    """The runtimes ``--runtime auto`` measures on the machine of ``profile`` and why each other one is
    skipped. By default (``requested`` None) bf16 is measured only on CPUs that multiply bf16 in hardware:
    elsewhere torch emulates it (6× slower than fp32 on an AVX2 EPYC); named runtimes are always measured
    when they can be built."""
    candidates: list[str] = []
    skipped: dict[str, str] = {}
    for name in requested or RUNTIMES:
        spec = SPECS[name]
        if spec.package and not is_installed(spec.package):
            skipped[name] = f"{spec.package} is not installed ({OPENVINO_HINT if spec.package == 'openvino' else 'pip install polydistill[export]'})"
        elif spec.calibrated and not calibration:
            skipped[name] = "needs calibration data (--dataset)"
        elif spec.precision == "bf16" and requested is None and not profile.native_bf16:
            skipped[name] = (f"this CPU ({profile.isa}) has no bf16 instructions (AVX-512 BF16 / AMX); emulated bf16 "
                             "is slower than fp32 (name it in --candidates to measure it anyway)")
        else:
            candidates.append(name)
    return candidates, skipped


# ------------------------------------------------------------------------------------- the source


# ------------------------------------------------------------------------------------ the builders


def fuse_onnx(fp32: Path, out: Path, config) -> dict[str, Any]:
    """ONNX Runtime's transformer fusion of ``fp32`` into ``out`` (python fusions, ``opt_level`` 0: the file
    stays portable across CPUs); the fused operator counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet_root_logger():
        optimized = optimize_model(str(fp32), model_type="bert", num_heads=int(config.num_attention_heads),
                                   hidden_size=int(config.hidden_size), opt_level=0)
        external = any(p != fp32 for p in fp32.parent.iterdir())
        optimized.save_model_to_file(str(out), use_external_data_format=external, all_tensors_to_one_file=True)
    counts = {op: int(n) for op, n in optimized.get_fused_operator_statistics().items() if n}
    return {"tool": "onnxruntime.transformers.optimizer", "model_type": "bert", "opt_level": 0,
            "num_heads": int(config.num_attention_heads), "hidden_size": int(config.hidden_size),
            "fused_operators": counts}


def _bytes(folder: Path, names: Sequence[str] | None = None) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and (names is None or p.name in names
                                                                              or any(p.name.startswith(n) for n in names)))


class CandidateBuilder:
    """Writes runtime directories of one :class:`SourceModel` under ``scratch``; the traced fp32 ONNX graph,
    its fused form and the calibration batches are made once and shared."""

    def __init__(self, src: SourceModel, scratch: Path, *, calibration=None, opset: int = 17,
                 exporter: str = "torchscript", per_channel: bool = True) -> None:
        self.src, self.scratch, self.calibration = src, Path(scratch), calibration
        self.opset, self.exporter, self.per_channel = opset, exporter, per_channel
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._unfused: Path | None = None
        self._fused: Path | None = None
        self.fusion: dict[str, Any] | None = None

    # -- shared intermediates ------------------------------------------------------------------
    def unfused(self) -> Path:
        if self._unfused is None:
            folder = self.scratch / "traced"
            folder.mkdir()
            path = folder / "model.onnx"
            src = self.src
            trace_to_onnx(src.model, src.task, src.names, src.output, src.tokenizer, src.limit, path, self.opset,
                          self.exporter)
            self._unfused = path
        return self._unfused

    def fused(self) -> Path:
        if self._fused is None:
            folder = self.scratch / "fused"
            folder.mkdir()
            path = folder / "model.onnx"
            self.fusion = fuse_onnx(self.unfused(), path, self.src.config)
            self._fused = path
        return self._fused

    def _typed(self, fused: Path) -> Path:
        """The fused graph with every tensor typed and shaped by onnxruntime's symbolic shape inference
        (ONNX's own cannot see through Attention / SkipLayerNormalization, so static quantisation would
        leave their outputs — the MatMul activations — in float)."""
        import onnx
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        folder = self.scratch / "fused-typed"
        if not folder.exists():
            folder.mkdir()
            external = any(p != fused for p in fused.parent.iterdir())
            model = SymbolicShapeInference.infer_shapes(onnx.load(str(fused)), auto_merge=True)
            onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=external,
                            all_tensors_to_one_file=True, location="model.onnx_data")
        return folder / "model.onnx"

    # -- one candidate ---------------------------------------------------------------------------
    def build(self, name: str, folder: Path) -> dict[str, Any]:
        """Write runtime ``name`` into the new directory ``folder`` (model files, config, tokenizer); its
        record: format, file, precision, bytes and the settings of fusion / quantisation / conversion."""
        spec = SPECS[name]
        require(not spec.calibrated or self.calibration is not None,
                f"The {name} runtime needs calibration data; pass --dataset.")
        folder.mkdir(parents=True)
        record: dict[str, Any] = {"runtime": name, "format": spec.format, "precision": spec.precision}
        if spec.format == "safetensors":
            record.update(self._torch(folder, spec))
        elif spec.format == "onnx":
            record.update(self._onnx(folder, spec))
        else:
            record.update(self._openvino(folder, spec))
        if spec.format != "safetensors":
            config = self.src.config
            config.architectures = [type(self.src.model).__name__]
            config.save_pretrained(folder)
        self.src.tokenizer.save_pretrained(folder)
        return record

    def _torch(self, folder: Path, spec: RuntimeSpec) -> dict[str, Any]:
        import torch

        dtype = torch.bfloat16 if spec.precision == "bf16" else torch.float32
        model = copy.deepcopy(self.src.model).to(dtype)
        model.config.architectures = [type(model).__name__]
        model.save_pretrained(folder, safe_serialization=True)
        files = sorted(p.name for p in folder.glob("*.safetensors"))
        return {"file": files[0] if len(files) == 1 else files, "dtype": str(dtype).removeprefix("torch."),
                "bytes": _bytes(folder, files), "loader": "transformers.AutoModel… (dtype from config.json)"}

    def _onnx(self, folder: Path, spec: RuntimeSpec) -> dict[str, Any]:
        out = folder / ONNX_FILE
        if not spec.fused:
            record: dict[str, Any] = {"file": ONNX_FILE, "fusion": None, "graph": "traced, unfused (onnxruntime applies "
                                      "its session-level fusions when it loads it)"}
            record["quantization_settings"] = _quantize(self.unfused(), out, None, self.per_channel)
            record["bytes"] = _bytes(folder, [ONNX_FILE])
            record["quantized_operators"] = _onnx_op_counts(out)
            return record
        fused = self.fused()
        record = {"file": ONNX_FILE, "fusion": self.fusion}
        if spec.precision == "fp32":
            for p in fused.parent.iterdir():
                shutil.copy2(p, folder / p.name)
        elif spec.precision == "int8-dynamic":
            record["quantization_settings"] = _quantize(fused, out, None, self.per_channel, fused=True)
        else:  # QDQ needs the types of the contrib operators' outputs, which only symbolic shape inference knows
            record["quantization_settings"] = _quantize(self._typed(fused), out, self.calibration, self.per_channel,
                                                        fused=True)
        record["bytes"] = _bytes(folder, [ONNX_FILE])
        record["quantized_operators"] = _onnx_op_counts(out)
        return record

    def _openvino(self, folder: Path, spec: RuntimeSpec) -> dict[str, Any]:
        require_openvino()
        import openvino as ov

        source = self.unfused()
        record: dict[str, Any] = {"file": OPENVINO_FILE, "openvino": ov.__version__, "converted_from": "traced ONNX "
                                  "graph (unfused; OpenVINO fuses on compile)", "compress_to_fp16": False}
        if spec.precision == "int8-static":
            qdq = self.scratch / "openvino-qdq"
            qdq.mkdir(exist_ok=True)
            record["quantization_settings"] = _quantize(source, qdq / "model.onnx", self.calibration, self.per_channel)
            source = qdq / "model.onnx"
        model = ov.Core().read_model(str(source))
        ov.save_model(model, str(folder / OPENVINO_FILE), compress_to_fp16=False)
        record["bytes"] = _bytes(folder, ["openvino_model"])
        return record


def _onnx_op_counts(path: Path) -> dict[str, int]:
    """Counts of the quantisation-related operators of an ONNX graph (what int8 covers)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type in ("QAttention", "DynamicQuantizeMatMul", "MatMulInteger", "DynamicQuantizeLinear",
                            "QuantizeLinear", "DequantizeLinear", "Attention", "MatMul", "SkipLayerNormalization",
                            "BiasGelu", "EmbedLayerNormalization"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


# ------------------------------------------------------------------------------------- loading


def require_openvino() -> None:
    if not installed("openvino"):
        raise PolydistillError(f"OpenVINO runtimes need the openvino package: {OPENVINO_HINT}.")


def require_packages(runtime: str) -> None:
    """The packages an export to ``runtime`` (one of :data:`RUNTIMES`) needs, one sentence naming a missing one:
    :func:`export_runtime` checks them, and compress before its first stage."""
    spec = SPECS[runtime]
    if spec.format != "safetensors":
        require_runtime()
    if spec.package == "openvino":
        require_openvino()


def is_openvino_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / OPENVINO_FILE).is_file()


def runtime_of_dir(path: str | os.PathLike) -> str:
    """The runtime an exported directory was written for (its export record), else guessed from its files."""
    folder = Path(path)
    prov = read_provenance(folder) if folder.is_dir() else None
    record = prov.get("export") if prov is not None else None
    if isinstance(record, dict) and record.get("runtime") in RUNTIMES:
        return str(record["runtime"])
    if is_openvino_dir(folder):
        return "openvino"
    if is_exported_dir(folder):
        return "onnx-int8" if str((record or {}).get("quantization", "")).startswith("int8") else "onnx-fp32"
    return "torch-fp32"


class _OpenVINOSession:
    """An OpenVINO compiled model behind the few calls :class:`ExportedModel` makes of an onnxruntime session."""

    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._inputs = [SimpleNamespace(name=i.get_any_name()) for i in compiled.inputs]
        self._outputs = [SimpleNamespace(name=o.get_any_name()) for o in compiled.outputs]

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self._outputs

    def get_providers(self):
        return ["OpenVINO CPU"]

    def run(self, names, feeds):
        import numpy as np

        result = self.request.infer(feeds)
        return [np.array(result[self.compiled.output(name)], copy=True) for name in names]


def _openvino_model_class():
    class OpenVINOModel(ExportedModel):
        """An OpenVINO IR directory, called like a transformers model (CPU, inference only)."""

        def runtime_info(self) -> dict[str, Any]:
            import openvino.properties.hint as hints

            precision = self.session.compiled.get_property(hints.inference_precision())
            return {"runtime": "openvino", "openvino_file": self.file.name, "provider": self.provider,
                    "ov_threads": self.threads, "inference_precision": str(precision),
                    "quantization": self.export_record.get("precision", "unknown")}

        def parameter_counts(self):
            ops = self.session.compiled.get_runtime_model().get_ops()
            return recorded_parameter_counts(self.export_record, lambda: sum(
                math.prod(int(dim) for dim in op.get_output_shape(0)) for op in ops if op.get_type_name() == "Constant"))

    return OpenVINOModel


def load_openvino(path: str | os.PathLike, *, threads: int | None = None):
    """An OpenVINO IR directory on the CPU with ``threads`` inference threads (default torch's), one stream."""
    import torch

    require_openvino()
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    folder = Path(path).expanduser()
    require(is_openvino_dir(folder), f"{path} holds no {OPENVINO_FILE}; export it with polydistill export "
            "--runtime openvino.")
    threads = int(threads or torch.get_num_threads())
    try:
        compiled = ov.Core().compile_model(str(folder / OPENVINO_FILE), "CPU", {
            props.inference_num_threads(): threads, props.num_streams(): 1,
            hints.performance_mode(): hints.PerformanceMode.LATENCY})
    except Exception as err:  # OpenVINO raises RuntimeError subclasses of its own
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PolydistillError(f"OpenVINO could not load {folder / OPENVINO_FILE} ({detail}).") from None
    return _openvino_model_class()(folder, folder / OPENVINO_FILE, _OpenVINOSession(compiled), load_config(folder),
                                   task_of(load_config(folder)), threads, read_provenance(folder))


def load_runtime_dir(path: str | os.PathLike, *, threads: int | None = None):
    """Any runtime directory, called like a transformers model: OpenVINO IR, ONNX (onnxruntime), or a
    PyTorch directory in the dtype it was saved in (bf16 safetensors load as bf16)."""
    folder = Path(str(path)).expanduser()
    if is_openvino_dir(folder):
        return load_openvino(folder, threads=threads)
    if is_exported_dir(folder):
        return load_exported(folder, threads=threads)
    return load_model(folder).eval()


def load_for_inference(source: str | os.PathLike, task: Any = None, threads: int | None = None):
    """A model to run: an OpenVINO IR directory through OpenVINO, an exported directory (it holds an
    ``.onnx`` file) through onnxruntime (:func:`polydistill.export.load_exported`, called like a
    transformers model), else :func:`load_model` (bf16 safetensors load as bf16). Evaluation and
    benchmarking load models through this."""
    folder = Path(str(source)).expanduser()
    if is_openvino_dir(folder):
        return load_openvino(folder, threads=threads)
    if is_exported_dir(folder):
        return load_exported(source, threads=threads)
    return load_model(source, task)


# ------------------------------------------------------------------------------------ comparison


def compare_outputs(reference, candidate, tokenizer, texts: Sequence[str], output: str, *, max_length: int = 128,
                    batch_size: int = 64) -> dict[str, Any]:
    """``candidate`` against ``reference`` (both called like transformers models) on ``texts``: max |diff|
    and argmax agreement (classifiers: per text, token classifiers: per real token) or hidden-state cosine
    (bare encoders: mean and min over real tokens)."""
    import numpy as np
    import torch

    require(len(texts) > 0, "No texts to compare the runtimes on.")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding per batch
    agree = total = 0
    cosines: list[np.ndarray] = []
    max_diff = 0.0
    names = None
    for start in range(0, len(order), batch_size):
        chunk = [texts[i] for i in order[start:start + batch_size]]
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        if names is None:
            names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
            if "token_type_ids" in names and not getattr(reference.config, "type_vocab_size", 0):
                names.remove("token_type_ids")
        batch = {n: enc[n] for n in names}
        with torch.inference_mode():
            ref = getattr(reference(**batch), output).float().numpy()
            got = getattr(candidate(**batch), output).float().numpy()
        mask = batch["attention_mask"].numpy().astype(bool)
        ref_rows, got_rows = (ref, got) if ref.ndim == 2 else (ref[mask], got[mask])
        max_diff = max(max_diff, float(np.abs(ref_rows - got_rows).max()))
        if output == "logits":
            agree += int((ref_rows.argmax(-1) == got_rows.argmax(-1)).sum())
            total += len(ref_rows)
        else:
            cosines.append((ref_rows * got_rows).sum(-1) / (np.linalg.norm(ref_rows, axis=-1)
                                                            * np.linalg.norm(got_rows, axis=-1) + 1e-12))
    result: dict[str, Any] = {"texts": len(texts), "max_abs_diff": max_diff}
    if output == "logits":
        result["argmax_agreement"] = agree / total
        result["compared"] = total
    else:
        cos = np.concatenate(cosines)
        result["mean_cosine"], result["min_cosine"], result["compared"] = float(cos.mean()), float(cos.min()), len(cos)
    return result


# ---------------------------------------------------------------------------------------- writing


@dataclass
class Built:
    """A runtime candidate written under a scratch folder."""

    name: str
    path: Path
    record: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def base_record(src: SourceModel, built: Built) -> dict[str, Any]:
    """The export record of a runtime directory (``polydistill.json`` → ``export``)."""
    spec = SPECS[built.name]
    record: dict[str, Any] = {
        **built.record,
        "quantization": {"int8-dynamic": "int8-dynamic", "int8-static": "int8-static"}.get(spec.precision, "none"),
        "source": src.source,
        "task": src.task,
        "inputs": src.names,
        "output": src.output,
        "source_weights_bytes": src.weights_bytes,
        "parameters": asdict(count_parameters(src.model)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {**package_versions(), **_versions(), **({"openvino": _version("openvino")}
                                                              if spec.package == "openvino" else {})},
    }
    if spec.format == "onnx":
        import onnxruntime as ort

        record.update({"onnxruntime": ort.__version__, "opset": _opset(built.path / str(record["file"])),
                       "dynamic_axes": ["batch", "sequence"], "attention": "eager (fused by onnxruntime)",
                       "onnx_bytes": record.get("bytes")})
    return {key: value for key, value in record.items() if value is not None}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _opset(path: Path) -> int | None:
    import onnx

    return next((o.version for o in onnx.load(str(path), load_external_data=False).opset_import
                 if o.domain in ("", "ai.onnx")), None)


def write_runtime_dir(target: ModelDir, src: SourceModel, built: Built, record: dict[str, Any]) -> None:
    """Fill the output being written (:func:`~polydistill.student.model_dir.save_model_dir`) with ``built``'s
    files and the source's ``run.json``; its provenance (the ``export`` record) and card are written when the
    writer's block ends."""
    previous = read_provenance(src.path) if src.path.is_dir() else None
    target.provenance = (previous or Provenance()).with_step(
        "export", record, **({} if previous is not None and previous.task else {"task": src.task}))
    target.source = src.source
    if src.path.is_dir() and (src.path / RUN_FILE).is_file():
        shutil.copy2(src.path / RUN_FILE, target.path / RUN_FILE)
    for p in sorted(built.path.iterdir()):
        if p.name != "README.md":
            shutil.move(str(p), str(target.path / p.name))


def export_runtime(source: str | os.PathLike, out: str | os.PathLike, runtime: str, *, calibration_data=None,
                   calibration_examples: int = 256, calibration_max_length: int = 128, seed: int = 0, opset: int = 17,
                   exporter: str = "torchscript", per_channel: bool = True, overwrite: bool = False,
                   check_texts: Sequence[str] | None = None, push_to_hub: str | None = None,
                   token: str | None = None):
    """Write ``source`` to ``out`` in the standard form of ``runtime`` (one of :data:`RUNTIMES`), with its
    outputs compared with the fp32 PyTorch model and the machine profile in the export record."""
    require(runtime in RUNTIMES, f"Unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)} (or auto).")
    require(exporter in EXPORTERS, f"Unknown exporter {exporter!r}; choose {' or '.join(EXPORTERS)}.")
    require(14 <= opset <= 20, f"ONNX opset {opset} is not supported here; use 14 to 20.")
    spec = SPECS[runtime]
    require(not spec.calibrated or calibration_data is not None,
            f"The {runtime} runtime is calibrated on task data; pass --dataset.")
    require_packages(runtime)
    check_output_dir(out, overwrite)
    src = load_source(source)
    calibration = None
    if calibration_data is not None and spec.calibrated:
        calibration = prepare_calibration(calibration_data, src.tokenizer, src.names, calibration_examples,
                                          min(calibration_max_length, src.limit), seed)
    with save_model_dir(out, "export", overwrite=overwrite, lock=True,
                        expected_bytes=3 * (src.weights_bytes or 0)) as target:
        scratch = target.path / ".build"
        builder = CandidateBuilder(src, scratch, calibration=calibration, opset=opset, exporter=exporter,
                                   per_channel=per_channel)
        built = Built(runtime, scratch / runtime, {})
        built.record = builder.build(runtime, built.path)
        loaded = load_runtime_dir(built.path)
        check = compare_outputs(src.model, loaded, src.tokenizer, list(check_texts or CHECK_SENTENCES), src.output,
                                max_length=src.limit)
        del loaded
        if spec.precision == "fp32" and check["max_abs_diff"] > 1e-3:
            raise PolydistillError(f"The {runtime} export differs from the PyTorch model by {check['max_abs_diff']:.2g} "
                                   "(more than 1e-3); this architecture does not convert faithfully, please report it.")
        record = {**base_record(src, built), "check": check, "machine": machine_profile().to_dict()}
        write_runtime_dir(target, src, built, record)
        shutil.rmtree(scratch)
    if push_to_hub:
        push_model_dir(out, push_to_hub, token=token)
    return ExportResult(Path(out), record)
