"""Papers are cited by name (issue #31): "Wibowo et al. 2024, ACL Table 6", "Singh et al. 2023, §5",
never by the number of a seed file a user cannot resolve ("000 Table 6", "seed 004 §5")."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [
    *(ROOT / "src" / "polydistill").rglob("*.py"),
    *(ROOT / "docs").rglob("*.md"),
    ROOT / "README.md",
    *(ROOT / "configs").rglob("*.yaml"),
    *(p for p in (ROOT / "benchmarks").rglob("*") if p.suffix in {".py", ".md", ".yaml", ".sh"}),
]
_SEED = r"00[0-4]"
_WHAT = r"(?:Tables?|§|Fig(?:ure)?s?\.?|footnote|eqs?\.|[Aa]ppendix)"
SEED_CITATION = re.compile(
    rf"\b[Ss]eeds?\s+{_SEED}\b"  # seed 004, Seed 000
    rf"|(?<![\d.,_]){_SEED}(?:'s)?\s+{_WHAT}"  # 000 Table 6, 004 §5, 000's Figure 2, 000\nTable 6
    rf"|\b(?:Tables?|Figures?)\s+\d+\s+of\s+{_SEED}\b"  # Table 2 of 000
    rf"|[(/]\s*{_SEED}\s*[):;]"  # (004), / 004), (000: ...)
)


def test_the_pattern_finds_seed_citations_and_spares_numbers():
    cited = ["(000 Table 6: 30)", "seed 004 §5", "003 Table 12", "Seed 004 (Singh", "000 §4.1 Table 1",
             "Table 2 of 000 (", "(DistilBERT / 004)", "dev split (000\nTable 6", "000 eq. 6", "000 footnote 3"]
    plain = ["default 50,000 words", "10_000 steps", "1e-6 (Singh et al. 2023)", "250,002 tokens",
             "Wibowo et al. 2024, ACL Table 6", "Singh et al. 2023, §5", "step 1,000 §"]
    assert [c for c in cited if not SEED_CITATION.search(c)] == []
    assert [p for p in plain if SEED_CITATION.search(p)] == []


def test_papers_are_cited_by_name_not_by_seed_number():
    found = []
    for path in SCANNED:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        found += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
                  for m in SEED_CITATION.finditer(text)]
    assert not found, ("papers cited by seed-file number; write 'Wibowo et al. 2024' or 'Singh et al. 2023' "
                       f"with the paper's own table/section numbers: {found}")
