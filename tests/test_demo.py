"""The offline demo: shipped sample, small-encoder fallback, and a (quick) end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polydistill.demo.pipeline import SAMPLE_DIR, SEEN, UNSEEN, build_small_encoder, run_demo
from polydistill.errors import PolydistillError


def test_sample_is_small_attributed_and_split_seen_unseen():
    readme = (SAMPLE_DIR / "README.md").read_text()
    assert "CC BY 4.0" in readme and "MASSIVE" in readme
    files = sorted((SAMPLE_DIR / "massive" / "data").glob("*.jsonl"))
    assert {f.stem for f in files} == set(SEEN + UNSEEN)
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert 300 <= len(records) <= 1500
    assert 6 <= len({r["intent"] for r in records}) <= 10
    unseen_partitions = {r["partition"] for r in records if r["locale"] in UNSEEN}
    assert unseen_partitions == {"test"}  # never trained on
    # the unseen test sets are translations of the seen ones (MASSIVE ids are parallel)
    ids = {loc: {r["id"] for r in records if r["locale"] == loc and r["partition"] == "test"} for loc in SEEN + UNSEEN}
    assert ids["it-IT"] == ids["en-US"] == ids["nl-NL"]


def test_small_encoder_is_a_loadable_model_with_a_sample_vocabulary(tmp_path):
    from polydistill.modeling import load_model, load_tokenizer

    out = build_small_encoder(tmp_path / "enc")
    model, tokenizer = load_model(str(out)), load_tokenizer(str(out))
    assert model.config.num_hidden_layers == 4
    pieces = tokenizer.tokenize("wake me up at seven")
    assert "[UNK]" not in pieces and len(tokenizer) <= 2000


def test_unreachable_teacher_is_one_clear_error(tmp_path):
    with pytest.raises(PolydistillError):
        run_demo(teacher=str(tmp_path / "no-such-model"), out=tmp_path / "demo", say=lambda _: None)


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One quick demo grid (the slow part) for the tests below: (out, result, messages)."""
    out = tmp_path_factory.mktemp("quick-demo") / "demo"
    messages: list[str] = []
    return out, run_demo(out=out, say=messages.append, quick=True), messages


def test_quick_demo_runs_end_to_end(quick_demo):
    out, result, messages = quick_demo
    assert result.teacher_kind == "small-encoder"
    assert any("small 4-layer encoder" in m for m in messages) and any("--teacher" in m for m in messages)
    table = result.table_markdown
    for row in ("| teacher |", "| from-scratch + KD |", "| from-teacher + KD |"):
        assert row in table
    assert "massive / seen" in table and "massive / unseen" in table
    pngs = [Path(p) for p in result.files.values() if str(p).endswith(".png")]
    assert any(p.name.startswith("f1_by_model") for p in pngs) and all(p.stat().st_size > 0 for p in pngs)
    # re-running reuses every finished run
    again = run_demo(out=out, say=lambda _: None, quick=True)
    assert again.table_markdown == table


def test_quick_demo_with_compress_runs_through_the_cli(quick_demo, monkeypatch):
    """``polydistill demo --quick --compress`` end to end: the grid (reused from the fixture's run), then
    compress of its teacher, its report card printed and an int8 export written. It once crashed with an
    ImportError after the whole demo had run."""
    from typer.testing import CliRunner

    from polydistill.cli import app
    from polydistill.demo import pipeline

    out = quick_demo[0]
    # a KD budget of ~1 s (a few dozen steps) instead of --quick's 30 s: the pipeline, not the student, is tested
    monkeypatch.setitem(pipeline.COMPRESS_BUDGET_MINUTES, True, 0.02)
    result = CliRunner().invoke(app, ["demo", "--quick", "--compress", "--out", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "| from-teacher + KD |" in result.output  # the grid's table
    assert f"compressed student: {out / 'compress'}" in result.output
    report = (out / "compress" / "report.md").read_text(encoding="utf-8")
    assert report.strip() and report.strip() in result.output  # the compress report card is printed
    assert any((out / "compress").rglob("*.onnx"))  # the int8 export
