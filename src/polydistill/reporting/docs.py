"""Named docs blocks: the text between ``<!-- KIND:begin NAME -->`` and ``<!-- KIND:end NAME -->`` lines of a
Markdown file, read (:func:`docs_blocks`), rewritten in place (:func:`update_docs`) and compared with freshly
rendered blocks (:func:`docs_drift`, the ``--check-docs`` check). The grid report writes ``polydistill`` blocks,
``compress-seeds`` writes ``compress-seeds`` / ``compress-against`` blocks; what goes in a block is the caller's."""

from __future__ import annotations

import re
from pathlib import Path

from polydistill.errors import PolydistillError
from polydistill.io import atomic_write_text


# a marker is a line of its own (the same text inside a sentence or `code` is not one)
def markers(kind: str) -> tuple[re.Pattern, re.Pattern]:
    return (re.compile(rf"^<!-- {re.escape(kind)}:begin (\S+) -->[ \t]*$", re.M),
            re.compile(rf"^<!-- {re.escape(kind)}:end (\S+) -->[ \t]*$", re.M))


def spans(text: str, source: str, kind: str = "polydistill") -> list[tuple[str, int, int]]:
    """(name, start of body, end of body) of each ``<!-- KIND:begin NAME -->`` block; unbalanced markers are
    refused."""
    opening, closing = markers(kind)
    found = []
    pos = 0
    while (begin := opening.search(text, pos)) is not None:
        name = begin.group(1)
        end = closing.search(text, begin.end())
        if end is None or end.group(1) != name or ((nxt := opening.search(text, begin.end())) and
                                                    nxt.start() < end.start()):
            raise PolydistillError(f"{source}: the block <!-- {kind}:begin {name} --> has no matching "
                                   f"<!-- {kind}:end {name} --> before the next block; add it.")
        found.append((name, begin.end(), end.start()))
        pos = end.end()
    stray = [m.group(1) for m in closing.finditer(text) if not any(s <= m.start() <= e for _, s, e in found)
             and m.start() not in {e for _, _, e in found}]
    if stray:
        raise PolydistillError(f"{source}: <!-- {kind}:end {stray[0]} --> has no begin marker; remove it or "
                               "add the begin marker.")
    return found


def docs_blocks(text: str, source: str = "docs", kind: str = "polydistill") -> dict[str, str]:
    """The body of every ``<!-- KIND:begin NAME -->`` … ``<!-- KIND:end NAME -->`` block, stripped (the grid
    report's blocks are ``polydistill``; docs/reproduction.md also has ``compress-seeds`` blocks)."""
    return {name: text[start:end].strip() for name, start, end in spans(text, source, kind)}


def update_docs(path: str | Path, blocks: dict[str, str], kind: str = "polydistill") -> tuple[list[str], list[str]]:
    """Rewrite every marker block of ``path`` whose name the report has (atomically); returns
    (names updated, names left alone because the report has no such block)."""
    path = Path(path)
    if not path.is_file():
        raise PolydistillError(f"{path} does not exist; pass the Markdown file with the {kind}:begin blocks.")
    text = path.read_text(encoding="utf-8")
    found = spans(text, str(path), kind)
    if not found:
        raise PolydistillError(f"{path} has no <!-- {kind}:begin NAME --> block; add one where a table goes.")
    parts, pos, updated, missing = [], 0, [], []
    for name, start, end in found:
        parts.append(text[pos:start])
        if name in blocks:
            parts.append("\n\n" + blocks[name].strip() + "\n\n")
            updated.append(name)
        else:
            parts.append(text[start:end])
            missing.append(name)
        pos = end
    parts.append(text[pos:])
    new = "".join(parts)
    if new != text:
        atomic_write_text(path, new)
    return updated, missing


def docs_drift(text: str, blocks: dict[str, str], source: str = "docs") -> list[str]:
    """One line per docs block that differs from the report (or names a grid the report lacks)."""
    problems = []
    for name, body in docs_blocks(text, source).items():
        if name not in blocks:
            problems.append(f"{source}: block {name!r} names no grid of the report "
                            f"(report blocks: {', '.join(blocks) or 'none'}).")
        elif body != blocks[name].strip():
            problems.append(f"{source}: block {name!r} differs from the report; run polydistill grid report DIR "
                            f"--update-docs {source}.")
    return problems
