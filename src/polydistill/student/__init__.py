"""Student construction by weight copy: depth (layer maps), width (index selection), init.

Public API: :func:`build_student` / :class:`BuiltStudent`, :func:`get_adapter`,
:func:`resolve_layer_map`, :class:`WidthPlan` / :func:`uniform_plan`, :func:`read_provenance`.
Importing this package does not import torch.
"""

from __future__ import annotations

from polydistill.architectures import get_adapter
from polydistill.student.build import BuiltStudent, build_student
from polydistill.student.layer_maps import resolve_layer_map
from polydistill.student.provenance import read_provenance
from polydistill.student.selection import WidthPlan, uniform_plan

__all__ = ["BuiltStudent", "WidthPlan", "build_student", "get_adapter", "read_provenance", "resolve_layer_map",
           "uniform_plan"]
