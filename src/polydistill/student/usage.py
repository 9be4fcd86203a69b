"""How a model directory is *used*, beside its weights: sentence-transformers' pipeline description
(``modules.json``, ``sentence_bert_config.json``, ``config_sentence_transformers.json`` and the module
folders it names: ``1_Pooling``, ``2_Normalize``, ...). Every model polydistill derives from such a model
(a student, a vocabulary-reduced copy) keeps it, so that sentence-transformers loads the derived model as the
same pipeline (pooling, normalisation) instead of a bare Transformer with mean pooling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from polydistill.errors import PolydistillError
from polydistill.io import atomic_write_json, read_json

USAGE_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
USAGE_FOLDERS = ("1_Pooling",)  # plus every module folder modules.json names (e.g. 2_Normalize)
# sentence-transformers modules whose configuration names the encoder's width
_WIDTH_KEYS = {"sentence_transformers.models.Pooling": "word_embedding_dimension"}


def module_entries(src: Path) -> list[dict]:
    path = src / "modules.json"
    modules = read_json(path) if path.is_file() else []
    return [m for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []


def module_folders(src: Path) -> list[str]:
    """The module folders sentence-transformers' ``modules.json`` names (``1_Pooling``, ``2_Normalize``...)."""
    folders = [m.get("path") for m in module_entries(src)]
    return [f for f in folders if isinstance(f, str) and f and "/" not in f and not f.startswith(".")]


def copy_usage_files(src: Path, dst: Path, *, hidden: int | None = None) -> None:
    """Copy only the known usage files (never weights, code or other tools' records such as a fixture
    builder's FIXTURE.json). ``hidden``: the derived model's hidden size where it differs from ``src``'s:
    the modules that state the width (Pooling) get it; a module with weights of that width (Dense) cannot
    follow and is refused in one sentence."""
    for name in USAGE_FILES:
        if (src / name).is_file() and not (dst / name).exists():
            shutil.copy2(src / name, dst / name)
    for name in dict.fromkeys([*USAGE_FOLDERS, *module_folders(src)]):
        if (src / name).is_dir() and not (dst / name).exists():
            shutil.copytree(src / name, dst / name, ignore=shutil.ignore_patterns("*.py", ".*"))
    if hidden is None:
        return
    for module in module_entries(src):
        kind, folder = str(module.get("type", "")), str(module.get("path", ""))
        if kind.endswith(".Dense"):
            raise PolydistillError(f"The sentence-transformers module {folder} ({kind}) has weights of the "
                                   "teacher's width, which a narrower student cannot use; keep the hidden size, or "
                                   "remove the module from the teacher's modules.json.")
        key = _WIDTH_KEYS.get(kind)
        config = dst / folder / "config.json"
        if key and config.is_file():
            data = json.loads(config.read_text(encoding="utf-8"))
            data[key] = hidden
            atomic_write_json(config, data)
