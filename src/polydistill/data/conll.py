"""CoNLL / IOB2 reading shared by the UNER adapter and the generic adapter.

Sentences are separated by blank lines; ``#`` lines are comments. Two token-line layouts:
UD/UNER style ``index<TAB>token<TAB>tag<TAB>...`` (first column an integer, tag in column 3) and
plain CoNLL ``token ... tag`` (tag in the last column).
"""

from __future__ import annotations

import re
from pathlib import Path

from polydistill.errors import PolydistillError

_ENTITY = re.compile(r"^([BI])-(.+)$")


def normalise_tag(tag: str, drop_types: tuple[str, ...] = ("OTH",)) -> str:
    """UNER's PER/ORG/LOC scheme: OTH entities and stray ``B-O``/``I-O`` become ``O``."""
    match = _ENTITY.match(tag)
    if match and (match.group(2) in drop_types or match.group(2) == "O"):
        return "O"
    return tag


def read_iob(path: Path, drop_types: tuple[str, ...] = ("OTH",), strict: bool = False,
             first_seen: dict[str, int] | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences of ``path`` as (tokens, tag strings); raises on malformed lines.

    ``strict`` (users' own files): a UTF-8 BOM is accepted, columns are stripped, every token line
    must have as many columns as the first one and a non-empty token and tag. ``first_seen``, when
    given, receives the line number of each tag's first occurrence (for messages naming a line).
    """
    try:
        lines = path.read_text(encoding="utf-8-sig" if strict else "utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise PolydistillError(f"{path} is not UTF-8 text ({err.reason}); the file is corrupt.") from None
    sentences, tags = [], []
    tokens_now: list[str] = []
    tags_now: list[str] = []
    width: tuple[int, int] | None = None  # (columns, line) of the first token line, for strict
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if not line.strip():
            if tokens_now:
                sentences.append(tokens_now)
                tags.append(tags_now)
                tokens_now, tags_now = [], []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        if strict:
            cols = [col.strip() for col in cols]
            width = width or (len(cols), lineno)
            if len(cols) != width[0]:
                raise PolydistillError(f"{path} line {lineno} has {len(cols)} column{'s' * (len(cols) != 1)} but line "
                                       f"{width[1]} has {width[0]} ({line[:40]!r}); every token line needs the same columns, "
                                       "token and tag included.")
        if len(cols) >= 3 and cols[0].isdigit():
            token, tag = cols[1], cols[2]
        elif len(cols) >= 2:
            token, tag = cols[0], cols[-1]
        else:
            raise PolydistillError(f"{path} line {lineno} has no tag column ({line[:40]!r}); expected "
                                   "'token<TAB>tag' or 'index<TAB>token<TAB>tag'.")
        if strict and not (token and tag):
            raise PolydistillError(f"{path} line {lineno} has an empty {'token' if not token else 'tag'} "
                                   f"({line[:40]!r}); give every token line a token and a tag.")
        if tag != "O" and not _ENTITY.match(tag):
            raise PolydistillError(f"{path} line {lineno} has tag {tag!r}, which is not IOB2 (O, B-X, I-X).")
        tag = normalise_tag(tag, drop_types)
        if first_seen is not None:
            first_seen.setdefault(tag, lineno)
        tokens_now.append(token)
        tags_now.append(tag)
    if tokens_now:
        sentences.append(tokens_now)
        tags.append(tags_now)
    return sentences, tags


def bio_label_names(entity_types: list[str]) -> list[str]:
    """``O`` then ``B-X, I-X`` per entity type in the given order."""
    names = ["O"]
    for kind in entity_types:
        names += [f"B-{kind}", f"I-{kind}"]
    return names
