"""The CPU tables of docs/reproduction.md are the report of the committed results stores results/cpu and
results/half-width, those of docs/lang.md the report of results/eliquare.

Every ``<!-- polydistill:begin NAME -->`` … ``<!-- polydistill:end NAME -->`` block of the docs must
equal what ``polydistill grid report STORE`` shows for NAME (a grid's table, GRID:claims, GRID:teachers,
paper-claims or eliquare-claims);
``--update-docs`` rewrites them. The mechanism is tested on a tiny synthetic store, always.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from polydistill.cli import app
from polydistill.errors import PolydistillError
from polydistill.evaluate.metrics import classification_scores
from polydistill.experiments.grid import expand
from polydistill.experiments.report import report_blocks
from polydistill.experiments.schema import parse_config
from polydistill.experiments.store import ResultStore, encode_language, encode_predictions
from polydistill.io import atomic_write_json
from polydistill.reporting.docs import docs_blocks, docs_drift, update_docs

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "results" / "cpu"
DOCS = REPO / "docs" / "reproduction.md"
# every committed store whose grids have blocks in a doc: the Privileged Students grids (the half-width study
# has its own store) in docs/reproduction.md, the Eliquare grids in docs/lang.md
STORES = {DOCS: (STORE, REPO / "results" / "half-width"),
          REPO / "docs" / "lang.md": (REPO / "results" / "eliquare",)}


@pytest.mark.parametrize("doc", list(STORES), ids=lambda p: p.name)
def test_docs_tables_match_the_committed_results_stores(doc):
    filled = [store for store in STORES[doc] if any((store / "results").glob("*.json"))]
    if not filled:
        pytest.skip("no committed store holds result files yet, so the docs tables have no source to be checked "
                    "against (see results/cpu/README.md)")
    source = str(doc.relative_to(REPO))
    text = doc.read_text(encoding="utf-8")
    blocks: dict[str, str] = {}
    for store in filled:
        blocks.update(report_blocks(store))
    # a block of a grid no filled store has run yet has nothing to be checked against: left as written
    grids = {path.stem for store in filled for path in (store / "grids").glob("*.json")}
    for name, body in docs_blocks(text, source).items():
        if name.split(":")[0] not in grids:
            blocks.setdefault(name, body)
    problems = docs_drift(text, blocks, source)
    assert not problems, "\n".join(problems)


def test_docs_blocks_name_shipped_cpu_grids():
    names = docs_blocks(DOCS.read_text(encoding="utf-8"), "docs/reproduction.md")
    cpu_grids = {yaml.safe_load(p.read_text())["name"] for p in (REPO / "configs" / "cpu").glob("*.yaml")}
    assert {"cpu-table1-all-languages", "cpu-table5-zero-shot-seen"} <= set(names)
    assert "paper-claims" in names  # the paper's claims across the grids (experiments/paper_claims.py)
    assert {n.split(":")[0] for n in names if n != "paper-claims"} <= cpu_grids
    assert (STORE / "README.md").is_file()


GRID = {
    "name": "tiny-grid",
    "teachers": [{"name": "tiny", "model": "some/model"}],
    "datasets": [{"name": "tsm"}],
    "seeds": [0, 1],
    "students": {"inits": ["from-scratch", "from-teacher"], "kd": [True], "layers": [2]},
}


def synthetic_store(root: Path) -> Path:
    """results/*.json and grids/*.json only (no runs/): teacher + two students × two seeds."""
    runs = expand(parse_config(GRID))
    store = ResultStore(root)
    quality = {None: 0.9, "from-scratch": 0.4, "from-teacher": 0.75}
    for spec in runs:
        rng = np.random.default_rng(int(spec.run_id.split("-")[1], 16))
        gold_rng = np.random.default_rng(0)
        langs, pooled = {}, ([], [])
        for code in ("english", "spanish"):
            gold = gold_rng.integers(0, 3, 20).tolist()
            pred = [y if rng.random() < quality[spec.init] else (y + 1) % 3 for y in gold]
            langs[code] = encode_language("sequence", gold, pred, [f"{code} tweet {i}" for i in range(20)])
            pooled[0].extend(gold)
            pooled[1].extend(pred)
        store.save(spec.run_id, {
            "spec": spec.model_dump(mode="json"), "label": spec.label, "loss_curve": [], "wall_seconds": 1.0,
            "metrics": {"groups": {"all": classification_scores(*pooled)}, "per_language": {},
                        "predictions": encode_predictions("sequence", ["negative", "neutral", "positive"],
                                                          {"all": langs})}})
    atomic_write_json(root / "grids" / "tiny-grid.json",
                      {"runs": [{"run_id": s.run_id, "label": s.label} for s in runs]})
    return root


DOC = """# Results

Intro text that stays; it mentions `<!-- polydistill:begin NAME -->` and `<!-- polydistill:end NAME -->`
in passing, which are no markers (a marker is a line of its own).

<!-- polydistill:begin tiny-grid -->
| stale | table |
|---|---|
<!-- polydistill:end tiny-grid -->

Between the blocks.

<!-- polydistill:begin tiny-grid:claims -->
(to be generated)
<!-- polydistill:end tiny-grid:claims -->

<!-- polydistill:begin other-grid -->
hand-written, no results for it
<!-- polydistill:end other-grid -->

Outro.
"""


def test_update_docs_rewrites_the_blocks_and_the_check_then_passes(tmp_path):
    store = synthetic_store(tmp_path / "store")
    assert not (store / "runs").exists()
    blocks = report_blocks(store, resamples=200)
    assert set(blocks) == {"tiny-grid", "tiny-grid:claims", "tiny-grid:teachers"}
    assert "| tiny | tsm |" in blocks["tiny-grid:teachers"]  # the teacher row (no dev curve recorded here)
    assert blocks["tiny-grid"].startswith("| model | tsm |")
    assert "init matters: from-teacher + KD − from-scratch + KD" in blocks["tiny-grid:claims"]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    drift = docs_drift(DOC, blocks, "doc.md")
    assert len(drift) == 3 and "'tiny-grid' differs" in drift[0] and "'other-grid' names no grid" in drift[2]

    updated, missing = update_docs(doc, blocks)
    assert updated == ["tiny-grid", "tiny-grid:claims"] and missing == ["other-grid"]
    text = doc.read_text()
    assert docs_blocks(text)["tiny-grid"] == blocks["tiny-grid"].strip()
    assert docs_blocks(text)["tiny-grid:claims"] == blocks["tiny-grid:claims"].strip()
    assert docs_blocks(text)["other-grid"] == "hand-written, no results for it"
    for kept in ("Intro text that stays; it mentions `<!-- polydistill:begin NAME -->`", "Between the blocks.", "Outro.", "| stale |"):
        assert (kept in text) == (kept != "| stale |")
    assert docs_drift(text, blocks) == [docs_drift(DOC, blocks)[2]]  # only the grid without results is left
    # idempotent, and the same numbers from a second regeneration (the bootstrap is seeded)
    assert update_docs(doc, report_blocks(store, resamples=200))[0] == updated and doc.read_text() == text


def test_cli_update_docs_and_check_docs(tmp_path):
    store = synthetic_store(tmp_path / "store")
    doc = tmp_path / "doc.md"
    doc.write_text(DOC.replace(DOC[DOC.index("<!-- polydistill:begin other-grid"):DOC.index("Outro")], ""))
    runner = CliRunner()
    check = runner.invoke(app, ["grid", "report", str(store), "-o", str(tmp_path / "r"), "--check-docs", str(doc)])
    assert check.exit_code == 1 and "differs from the report" in check.output
    update = runner.invoke(app, ["grid", "report", str(store), "-o", str(tmp_path / "r"), "--update-docs", str(doc)])
    assert update.exit_code == 0, update.output
    assert "updated 2 block(s) (tiny-grid, tiny-grid:claims)" in update.output
    check = runner.invoke(app, ["grid", "report", str(store), "-o", str(tmp_path / "r"), "--check-docs", str(doc)])
    assert check.exit_code == 0, check.output
    # the docs block is exactly the table the report printed and wrote
    table_md = (tmp_path / "r" / "table.md").read_text()
    assert docs_blocks(doc.read_text())["tiny-grid"] in table_md
    assert docs_blocks(doc.read_text())["tiny-grid"].endswith("Wall time: 0.1 min for 5 runs.")  # 5 × 1 s
    assert docs_blocks(doc.read_text())["tiny-grid:claims"] in (tmp_path / "r" / "claims.md").read_text()


def test_unbalanced_markers_are_refused(tmp_path):
    with pytest.raises(PolydistillError, match="has no matching"):
        docs_blocks("<!-- polydistill:begin a -->\nx\n<!-- polydistill:begin b -->\n<!-- polydistill:end b -->\n")
    with pytest.raises(PolydistillError, match="has no matching"):
        docs_blocks("<!-- polydistill:begin a -->\nx\n<!-- polydistill:end b -->\n")
    with pytest.raises(PolydistillError, match="has no begin marker"):
        docs_blocks("text\n<!-- polydistill:end a -->\n")
    doc = tmp_path / "plain.md"
    doc.write_text("no blocks here\n")
    with pytest.raises(PolydistillError, match="has no <!-- polydistill:begin"):
        update_docs(doc, {})
