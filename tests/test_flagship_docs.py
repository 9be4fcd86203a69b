"""The flagship tables of README.md and docs/compress.md are rendered from the committed compress reports
(results/flagship/<run>/report.json) by benchmarks/flagship_rows.py: every row shown must equal its render."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLAGSHIP = REPO / "results" / "flagship"


def _rows_module():
    spec = importlib.util.spec_from_file_location("flagship_rows", REPO / "benchmarks" / "flagship_rows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("doc", ["README.md", "docs/compress.md"])
def test_flagship_rows_equal_the_committed_reports(doc):
    rows = _rows_module()
    text = (REPO / doc).read_text(encoding="utf-8")
    shown = [line for line in text.splitlines() if re.match(r"\| [\w-]+ \((tsm|massive|massive-slots|universal-ner), \d+ languages\) \|",
                                                             line)]
    assert shown, f"{doc} shows no flagship row"
    for line in shown:
        run = line.split(" ", 2)[1]
        assert (FLAGSHIP / run / "report.json").is_file(), f"{doc} shows {run}, which has no committed report"
        assert line == rows.row(FLAGSHIP / run), f"{doc}: the row of {run} differs from its report"
    assert rows.HEADER.splitlines()[0] in text
