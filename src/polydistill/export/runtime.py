"""Run an exported directory with onnxruntime as if it were a transformers model.

:func:`load_exported` returns an :class:`ExportedModel`: ``.config`` (the directory's
``config.json``), ``model(input_ids=..., attention_mask=..., token_type_ids=...)`` returning a
transformers output (``.logits`` for classifiers, ``.last_hidden_state`` for a bare encoder) as torch
tensors, plus the few module methods that evaluation and benchmarking call (``eval``,
``parameters``, ``to``). The ONNX file itself is plain: any onnxruntime ``InferenceSession`` runs it
with the tokenizer's ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``) as int64 arrays.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polydistill.architectures import ParamCounts, task_of
from polydistill.errors import PolydistillError
from polydistill.export import ONNX_FILE
from polydistill.export.machine import CPU_FLAGS, parse_cpuinfo, read_cpuinfo
from polydistill.modeling import load_config

INSTALL_HINT = "pip install polydistill[export]"
OPENVINO_FILE = "openvino_model.xml"  # the IR of an OpenVINO runtime directory (optimum-intel's name)
# Instruction-set flags that decide int8 speed on x86 (VNNI: 8-bit dot products without saturation).
ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def require_runtime(*packages: str) -> None:
    """Import ``packages`` (default onnx and onnxruntime) or raise one sentence naming the extra."""
    for package in packages or ("onnx", "onnxruntime"):
        try:
            importlib.import_module(package)
        except ImportError:
            raise PolydistillError(f"ONNX export and inference need the {package} package: "
                                   f"{INSTALL_HINT}.") from None


def onnx_files(path: str | os.PathLike) -> list[Path]:
    folder = Path(path)
    return sorted(p for p in folder.glob("*.onnx") if p.is_file()) if folder.is_dir() else []


def is_exported_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding an ONNX model (an exported model directory)."""
    return bool(onnx_files(path))


def _choose_file(path: Path, file_name: str | None) -> Path:
    if file_name:
        chosen = path / file_name
        if not chosen.is_file():
            raise PolydistillError(f"{path} has no {file_name}; it holds {', '.join(p.name for p in onnx_files(path))}.")
        return chosen
    files = onnx_files(path)
    if not files:
        raise PolydistillError(f"{path} holds no .onnx file; export the model first with polydistill export.")
    if len(files) > 1 and (path / ONNX_FILE).is_file():
        return path / ONNX_FILE
    if len(files) > 1:
        raise PolydistillError(f"{path} holds several ONNX files ({', '.join(p.name for p in files)}); "
                               "name the one to load (file_name=...).")
    return files[0]


def cpu_isa_flags() -> dict[str, bool]:
    """The x86 instruction-set extensions that matter for int8 / bf16 (from /proc/cpuinfo; all False elsewhere)."""
    flags = parse_cpuinfo(read_cpuinfo()).flags
    return {flag: flag in flags for flag in dict.fromkeys((*ISA_FLAGS, *CPU_FLAGS))}


def runtime_info() -> dict[str, Any]:
    """For benchmark reports: CPU ISA flags and onnxruntime's version and providers (if installed)."""
    info: dict[str, Any] = {"cpu_flags": cpu_isa_flags()}
    try:
        import onnxruntime as ort
    except ImportError:
        info["onnxruntime"] = "not installed"
        return info
    info["onnxruntime"] = {"version": ort.__version__, "available_providers": ort.get_available_providers()}
    return info


class ExportedModel:
    """An ONNX model in an exported directory, called like a transformers model (CPU, inference only)."""

    training = False

    def __init__(self, path: Path, file: Path, session, config, task: str, threads: int,
                 provenance=None) -> None:
        import torch

        self.path, self.file, self.session, self.config, self.task = path, file, session, config, task
        self.threads = threads
        self.name_or_path = str(path)
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self._provenance = provenance
        self._anchor = torch.empty(0)  # tells callers that inputs go to the CPU (next(model.parameters()).device)

    # -- the calls of a transformers model ---------------------------------------------------
    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        import numpy as np
        import torch
        from transformers.modeling_outputs import (
            BaseModelOutput,
            SequenceClassifierOutput,
            TokenClassifierOutput,
        )

        asked = [k for k in ("output_hidden_states", "output_attentions", "labels") if kwargs.get(k) is not None
                 and kwargs.get(k) is not False]
        if asked:
            raise PolydistillError(f"An exported ONNX model returns only its {self.output_names[0]}; it cannot give "
                                   f"{', '.join(asked)}.")
        if input_ids is None:
            raise PolydistillError("An exported ONNX model needs input_ids.")

        def array(value) -> np.ndarray:
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            return np.asarray(value, dtype=np.int64)

        ids = array(input_ids)
        given = {"input_ids": ids,
                 "attention_mask": array(attention_mask) if attention_mask is not None else np.ones_like(ids),
                 "token_type_ids": array(token_type_ids) if token_type_ids is not None else np.zeros_like(ids)}
        feeds = {name: given[name] for name in self.input_names if name in given}
        missing = [name for name in self.input_names if name not in feeds]
        if missing:
            raise PolydistillError(f"The ONNX model {self.file} expects inputs {', '.join(missing)} that "
                                   "polydistill does not know; re-export it with polydistill export.")
        output = torch.from_numpy(self.session.run(self.output_names[:1], feeds)[0])
        if self.task == "sequence":
            return SequenceClassifierOutput(logits=output)
        if self.task == "token":
            return TokenClassifierOutput(logits=output)
        return BaseModelOutput(last_hidden_state=output)

    forward = __call__

    def eval(self) -> ExportedModel:
        return self

    def train(self, mode: bool = True) -> ExportedModel:
        if mode:
            raise PolydistillError(f"{self.path} is an exported ONNX model; it runs inference only. Train the "
                                   "PyTorch model it was exported from.")
        return self

    def parameters(self):
        yield self._anchor

    @property
    def device(self):
        return self._anchor.device

    def to(self, device) -> ExportedModel:
        if str(device).split(":")[0] != "cpu":
            raise PolydistillError(f"Exported ONNX models run on the CPU here ({self.path}); pass --device cpu.")
        return self

    def __deepcopy__(self, memo) -> ExportedModel:  # a session holds no state between calls
        return self

    # -- what a report records ---------------------------------------------------------------
    @property
    def export_record(self) -> dict[str, Any]:
        record = self._provenance.get("export") if self._provenance is not None else None
        return dict(record) if isinstance(record, dict) else {}

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def runtime_info(self) -> dict[str, Any]:
        record = self.export_record
        return {"runtime": "onnxruntime", "onnx_file": self.file.name, "provider": self.provider,
                "ort_threads": self.threads, "quantization": record.get("quantization", "unknown")}

    def parameter_counts(self):
        """Parameter counts of the model it was exported from (recorded at export); else the ONNX
        initializers' element count as the total (the split into embeddings / encoder unknown: 0)."""
        import onnx

        def initializers() -> int:
            graph = onnx.load(str(self.file), load_external_data=False).graph
            return sum(math.prod(tensor.dims) for tensor in graph.initializer)

        return recorded_parameter_counts(self.export_record, initializers)


def recorded_parameter_counts(record: dict[str, Any], count_total: Callable[[], int]):
    """The parameter counts an export record holds (of the model it was exported from); else
    ``count_total()`` as the total (the split into embeddings / encoder unknown: 0)."""
    recorded = record.get("parameters")
    if isinstance(recorded, dict):
        try:
            return ParamCounts(**recorded)
        except TypeError:
            pass
    return ParamCounts(total=count_total(), embedding=0, word_embedding=0, encoder=0, other=0)


def session_options(threads: int | None = None):
    """onnxruntime session options: ``threads`` intra-op threads (default: torch's thread count, so
    ``--threads`` means the same for PyTorch and ONNX models), one inter-op thread."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # no busy-waiting after a run: onnxruntime's idle workers otherwise spin on the cores the next model
    # needs (in a side-by-side bench, PyTorch's batch-1 times on 2 cores went from 45 to 170 ms)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_exported(path: str | os.PathLike, *, threads: int | None = None, file_name: str | None = None,
                  providers: list[str] | None = None) -> ExportedModel:
    """An exported model directory, ready to call like a transformers model (see :class:`ExportedModel`)."""
    from polydistill.student.provenance import read_provenance

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise PolydistillError(f"Exported model directory {path} does not exist.")
    file = _choose_file(folder, file_name)
    require_runtime("onnxruntime")
    import onnxruntime as ort

    config = load_config(folder)
    options = session_options(threads)
    try:
        session = ort.InferenceSession(str(file), sess_options=options, providers=providers or ["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for corrupt / unsupported files
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PolydistillError(f"onnxruntime could not load {file} ({detail}); the file may be corrupt or need a "
                               "newer onnxruntime.") from None
    return ExportedModel(folder, file, session, config, task_of(config), options.intra_op_num_threads,
                         read_provenance(folder))
