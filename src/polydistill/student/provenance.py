"""A model's provenance, ``polydistill.json``: the one typed record of how a model was made, read
and written only through this module.

A student built by weight copy fills the core fields (teacher, init, copied 0-indexed teacher
layers, width plan, sizes, seed). Every later stage adds its own record under its name
(``vocab_reduction``, ``lm_distill``, ``export``, ...) with :meth:`Provenance.with_step`, so the
file tells the whole story of a model, stage by stage. A model that is not a student (e.g. a
vocabulary-reduced teacher) carries only its stage records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from polydistill.io import PROVENANCE_FILE, atomic_write_json, read_record

STUDENT_RECORD_VERSION = 1


class Provenance(BaseModel):
    """Core fields of a weight-copy student; stage records are extra fields named after the stage."""

    model_config = ConfigDict(extra="allow")

    polydistill_student: int | None = None  # record version; set for students built by weight copy
    teacher: str | None = None
    teacher_architecture: str | None = None
    architecture: str | None = None  # adapter family, e.g. "BERT/mBERT"
    model_type: str | None = None
    task: str | None = None  # sequence | token | base | mlm
    base: str | None = None
    init: Literal["from-teacher", "from-base", "from-scratch"] | None = None
    copied: list[str] = []
    layer_map: str | None = None
    teacher_layers: list[int] | None = None  # 0-indexed teacher layer of each student layer
    num_layers: int | None = None
    width: dict[str, Any] | None = None  # WidthPlan.to_dict(): sizes, method, kept indices
    teacher_sizes: dict[str, int] | None = None
    labels: list[str] = []
    seed: int | None = None
    parameters: int | None = None
    teacher_parameters: int | None = None
    created: str | None = None
    versions: dict[str, str] = {}

    # dict-style reads (``prov["teacher_layers"]``) for scripts written against the JSON file
    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    @property
    def is_student(self) -> bool:
        return self.polydistill_student is not None

    def with_step(self, name: str, record: dict[str, Any], **updates: Any) -> Provenance:
        """A copy with the stage record ``name`` added (and core fields such as ``parameters`` updated)."""
        data = self.to_json()
        data.update(updates)
        data[name] = record
        return Provenance.model_validate(data)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


def read_provenance(model_dir: str | Path | None) -> Provenance | None:
    """The provenance of a model directory, or None if it has none."""
    if model_dir is None:
        return None
    path = Path(model_dir) / PROVENANCE_FILE
    return read_record(path, Provenance) if path.is_file() else None


def write_provenance(out: str | Path, provenance: Provenance) -> None:
    atomic_write_json(Path(out) / PROVENANCE_FILE, provenance.to_json())
