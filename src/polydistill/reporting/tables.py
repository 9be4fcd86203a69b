"""Table rendering helpers that know nothing of grids or compress runs: a Markdown table's lines and LaTeX
escaping."""

from __future__ import annotations


def latex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX tabular (backslash, ``&``, ``%``, ``_``, ``#``, ``±``, en dash)."""
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text.replace("±", r"$\pm$").replace("–", "--")


def markdown_rows(header, rows) -> list[str]:
    """A Markdown table's lines: ``header`` (cell texts) then one line per row's ``cells()``."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(row.cells()) + " |" for row in rows]
