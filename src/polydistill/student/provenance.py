"""A student's provenance: ``polydistill.json`` (machine-readable) and a README model card (words).

Both say the same: which teacher, which base, which init, which 0-indexed teacher layers were
copied, how the width was selected and the kept sizes, the seed and the package versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polydistill.io import atomic_write_json, atomic_write_text, read_json

PROVENANCE_FILE = "polydistill.json"

_INIT_WORDS = {
    "from-teacher": "copied from the teacher: embeddings, the mapped encoder layers and the task head",
    "from-base": "embeddings and the mapped encoder layers copied from the pretrained base model; the task "
    "head is newly initialised",
    "from-scratch": "nothing copied: the architecture's standard random initialisation",
}


def read_provenance(model_dir: str | Path) -> dict[str, Any] | None:
    """The provenance of a polydistill student, or None if ``model_dir`` has none."""
    path = Path(model_dir) / PROVENANCE_FILE
    return read_json(path) if path.is_file() else None


def model_card(prov: dict[str, Any]) -> str:
    """A Hugging Face README saying in words what ``polydistill.json`` records."""
    width = prov["width"]
    teacher_sizes = prov["teacher_sizes"]
    one_indexed = [k + 1 for k in prov["teacher_layers"]]
    task = {"sequence": "sequence classification", "token": "token classification", "base": "bare encoder"}[
        prov["task"]
    ]
    lines = [
        "---",
        "library_name: transformers",
        "tags:",
        "- polydistill",
        "- knowledge-distillation",
        "---",
        "",
        f"# Student of {prov['teacher']}",
        "",
        f"A {prov['num_layers']}-layer {prov['architecture']} {task} model built by "
        f"polydistill `student` from the teacher `{prov['teacher']}` "
        f"({teacher_sizes['num_layers']} layers). It has not been distilled yet: it is the starting point "
        "for `polydistill distill`.",
        "",
        "## How it was built",
        "",
        f"- **Initialisation:** `{prov['init']}`: {_INIT_WORDS[prov['init']]}.",
    ]
    if prov.get("base"):
        lines.append(f"- **Base model:** `{prov['base']}`.")
    if prov["init"] != "from-scratch":
        lines.append(
            f"- **Teacher layers copied** (layer map `{prov['layer_map']}`): 0-indexed {prov['teacher_layers']} "
            f"(1-indexed {one_indexed}); student layer i is a copy of the i-th listed layer."
        )
    else:
        lines.append(f"- **Depth:** {prov['num_layers']} layers (layer map `{prov['layer_map']}` not used: "
                     "nothing is copied).")
    lines.append(
        f"- **Width** ({width['method']} selection): hidden {width['hidden_size']} of "
        f"{teacher_sizes['hidden_size']}, FFN {width['intermediate_size']} of {teacher_sizes['intermediate_size']}, "
        f"{width['num_heads']} of {teacher_sizes['num_heads']} heads of size {width['head_size']} "
        f"(teacher {teacher_sizes['head_size']})."
    )
    if width["method"] == "uniform" and prov["init"] != "from-scratch":
        lines.append("  Uniform selection keeps evenly spaced elements (floor(j·n/k)), the same hidden indices in "
                     "embeddings, LayerNorms, attention and FFN so the residual stream stays aligned.")
    if width.get("criterion"):  # importance selection (student/importance.py): say how it was measured
        cal = width.get("calibration") or {}
        lines.append(
            f"  Importance selection, criterion {width['criterion']}; calibration data: "
            f"{cal.get('examples', width.get('calibration_examples'))} examples of {cal.get('dataset', '?')} "
            f"({cal.get('split', 'train')}, seed {cal.get('seed', '?')}); scoring took {width.get('scoring_seconds')} s. "
            "The kept indices are under `width.indices` in `polydistill.json`."
        )
    if width.get("layer_selection"):
        chosen = width["layer_selection"]
        lines.append(
            f"  Teacher layers chosen by importance ({chosen['criterion']}): greedy removal of the layer whose "
            f"removal raises the calibration loss least; removal order {[s['removed'] for s in chosen['trace']]}."
        )
    if prov.get("labels"):
        lines.append(f"- **Labels:** {len(prov['labels'])} ({', '.join(map(str, prov['labels'][:20]))}"
                     f"{', …' if len(prov['labels']) > 20 else ''}).")
    lines += [
        f"- **Seed:** {prov['seed']}.",
        f"- **Parameters:** {prov['parameters']:,} (teacher {prov['teacher_parameters']:,}).",
        f"- **Built:** {prov['created']} with "
        + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()) + ".",
        "",
        "The full record is in `polydistill.json`.",
        "",
    ]
    return "\n".join(lines)


def write_provenance(out: str | Path, prov: dict[str, Any]) -> None:
    atomic_write_json(Path(out) / PROVENANCE_FILE, prov)
    atomic_write_text(Path(out) / "README.md", model_card(prov))
