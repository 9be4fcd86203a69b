"""Deployable students: export a polydistill model directory to ONNX (fp32 or int8) and run it.

- :func:`export_model` (``polydistill export``) traces the model with ``torch.onnx.export`` and
  quantises it with onnxruntime (dynamic int8 by default, static int8 with calibration data).
- :func:`load_exported` runs an exported directory with ``onnxruntime`` behind the calling
  convention of a transformers model (``.config``, ``model(**batch).logits``), so evaluation and
  benchmarking take it unchanged.
- :func:`export_runtime` (``polydistill export --runtime NAME``) writes one of :data:`RUNTIMES` in that
  runtime's standard form (``runtimes.py``: torch bf16 safetensors, ONNX after onnxruntime's transformer
  fusion, OpenVINO IR); ``--runtime auto`` lives a level up (``polydistill.bench.select``).
- :func:`machine_profile` (``machine.py``): CPU, ISA flags, threads, GPU — in every export record.

One exported directory holds one model: ``model.onnx`` (fp32, or int8 when quantised),
``config.json``, the tokenizer files, ``polydistill.json`` with an ``export`` record and a model card.
onnx / onnxruntime are optional (``pip install polydistill[export]``) and imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ONNX_FILE", "RUNTIMES", "ExportResult", "ExportedModel", "export_model", "export_runtime", "is_exported_dir",
           "load_exported", "machine_profile"]

ONNX_FILE = "model.onnx"

_LAZY = {
    "ExportResult": "polydistill.export.convert",
    "export_model": "polydistill.export.convert",
    "ExportedModel": "polydistill.export.runtime",
    "is_exported_dir": "polydistill.export.runtime",
    "load_exported": "polydistill.export.runtime",
    "RUNTIMES": "polydistill.export.runtimes",
    "export_runtime": "polydistill.export.runtimes",
    "machine_profile": "polydistill.export.machine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
