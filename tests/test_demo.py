"""The offline demo: shipped sample, small-encoder fallback, and a (quick) end-to-end run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_wordpiece_vocab_breaks_count_ties_by_token():
    from tokenizers import normalizers, pre_tokenizers

    from polydistill.demo.pipeline import wordpiece_vocab

    norm, pre = normalizers.BertNormalizer(lowercase=True, strip_accents=False), pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]"]
    # "ab" and "cd" both occur twice, "abx" once: (a, ##b) wins the tie with (c, ##d) on the token
    texts = ["CD ab", "cd AB abx"]
    for order in (texts, texts[::-1]):
        vocab = wordpiece_vocab(order, norm, pre, vocab_size=100, specials=specials)
        assert list(vocab) == ["[PAD]", "[UNK]", "a", "c", "##b", "##d", "##x", "ab", "cd", "abx"]
        assert list(vocab.values()) == list(range(len(vocab)))
    assert len(wordpiece_vocab(texts, norm, pre, vocab_size=8, specials=specials)) == 8  # capped


def _in_subprocess(code: str, out: Path, hash_seed: int) -> None:
    """Run ``code`` (with ``out`` as ``OUT``) in a fresh interpreter with its own hash seed."""
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", f"from pathlib import Path\nOUT = Path({str(out)!r})\n{code}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_small_encoder_is_byte_identical_across_processes(tmp_path):
    """The tokenizers trainer broke count ties in hash order: tokenizer.json changed from run to run."""
    build_small_encoder(tmp_path / "enc1")  # here, and in a fresh process with another hash seed
    _in_subprocess("from polydistill.demo.pipeline import build_small_encoder\nbuild_small_encoder(OUT)",
                   tmp_path / "enc2", 12345)
    files = ["tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"]
    for name in files:
        assert (tmp_path / "enc1" / name).read_bytes() == (tmp_path / "enc2" / name).read_bytes(), name
    vocab = json.loads((tmp_path / "enc1" / "tokenizer.json").read_text())["model"]["vocab"]
    assert 1000 < len(vocab) <= 2000 and vocab["[PAD]"] == 0


def test_quick_demo_teacher_stage_is_reproducible(tmp_path):
    """The quick demo's teacher stage (small encoder + its fine-tune on the sample), run twice in fresh
    processes into different folders: the same weights and the same test scores."""
    teacher = """
import json
from polydistill.demo.pipeline import build_small_encoder, demo_config
from polydistill.experiments.runner import run_grid
from polydistill.experiments.store import open_store
encoder = build_small_encoder(OUT / "small-encoder")
run_grid(demo_config(str(encoder), "small-encoder", pretrained=False, quick=True), OUT / "grid", only=["teacher-"])
(record,) = open_store(OUT / "grid").records()
(OUT / "teacher.json").write_text(json.dumps({"model_dir": record["model_dir"], "metrics": record["metrics"]}))
"""
    runs = []
    for seed in (1, 2):
        _in_subprocess(teacher, tmp_path / f"demo{seed}", seed)
        runs.append(json.loads((tmp_path / f"demo{seed}" / "teacher.json").read_text()))
    first, second = (Path(r["model_dir"]) for r in runs)
    assert first != second
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert runs[0]["metrics"] == runs[1]["metrics"]
    vocab = [(tmp_path / f"demo{seed}" / "small-encoder" / "tokenizer.json").read_bytes() for seed in (1, 2)]
    assert vocab[0] == vocab[1]


@pytest.mark.slow
def test_quick_demo_tables_are_byte_identical_across_processes(tmp_path):
    """Issue #35 build 7: the quick demo run twice (small encoder built each time, fresh processes with other
    hash seeds, other folders): table.csv and claims.csv byte-identical (they differed from run to run:
    the vocabulary's ties were broken in hash order)."""
    demo = """
import json
from polydistill.demo.pipeline import run_demo
result = run_demo(out=OUT, say=lambda _: None, quick=True)
(OUT / "files.json").write_text(json.dumps({k: str(v) for k, v in result.files.items()}))
"""
    files = []
    for seed in (1, 2):
        _in_subprocess(demo, tmp_path / f"demo{seed}", seed)
        files.append(json.loads((tmp_path / f"demo{seed}" / "files.json").read_text()))
    tables = [name for name in ("csv", "claims_csv") if name in files[0]]
    assert "csv" in tables
    for name in tables:
        assert Path(files[0][name]).read_bytes() == Path(files[1][name]).read_bytes(), name


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
