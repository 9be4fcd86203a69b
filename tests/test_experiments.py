"""Grid config, expansion, results store and report (no training here; see test_experiments_resume.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from polydistill.errors import PolydistillError
from polydistill.experiments.grid import expand
from polydistill.experiments.report import build_table, flatten, to_latex, to_markdown, write_report
from polydistill.experiments.schema import SCHEMA_VERSION, load_config, parse_config
from polydistill.experiments.store import ResultStore

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "configs").glob("*/*.yaml"))

MINIMAL = {
    "name": "t",
    "teachers": [{"name": "tiny", "model": "some/model"}],
    "datasets": [{"name": "tsm"}, {"name": "massive"}],
    "seeds": [0, 1],
    "students": {"inits": ["from-scratch", "from-teacher"], "kd": [False, True], "layers": [2]},
}


def test_every_shipped_config_validates_and_expands():
    assert {p.parent.name for p in SHIPPED} == {"paper", "cpu"}
    for path in SHIPPED:
        config = load_config(path)
        runs = expand(config)
        assert config.schema_version == SCHEMA_VERSION
        assert runs[0].kind == "teacher", path
        ids = [r.run_id for r in runs]
        assert len(ids) == len(set(ids)), path
        teacher_ids = {r.run_id for r in runs if r.kind == "teacher"}
        assert all(r.teacher_run in teacher_ids for r in runs if r.kind != "teacher"), path


def test_paper_configs_use_paper_settings():
    # the eliquare_* configs are another paper's (Singh et al. 2023): tests/test_eliquare_grid.py checks them
    for path in sorted(p for p in (REPO / "configs/paper").glob("*.yaml") if not p.name.startswith("eliquare_")):
        config = load_config(path)
        assert {t.model for t in config.teachers} <= {"xlm-roberta-base", "microsoft/mdeberta-v3-base"}
        assert config.student_training.epochs == 30 and config.teacher_training.epochs == 30
        assert len(config.seeds) == 3


def test_cpu_configs_expand_user_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for path in sorted((REPO / "configs/cpu").glob("*.yaml")):
        config = load_config(path)
        assert all(t.model.startswith(str(tmp_path)) for t in config.teachers), path
    monkeypatch.setenv("PD_TEST_ROOT", "/data/x")
    config = parse_config({**MINIMAL, "data_root": "$PD_TEST_ROOT/y"})
    assert config.data_root == "/data/x/y"


def test_expansion_shares_one_teacher_per_model_and_dataset():
    runs = expand(parse_config(MINIMAL))
    teachers = [r for r in runs if r.kind == "teacher"]
    students = [r for r in runs if r.kind == "student"]
    assert len(teachers) == 2  # one per dataset, not per seed
    assert len(students) == 2 * 2 * 2 * 2  # datasets × inits × kd × seeds
    for s in students:
        teacher = next(t for t in teachers if t.run_id == s.teacher_run)
        assert teacher.dataset == s.dataset
        assert (s.kd_settings is not None) == s.kd
    # ids are stable across expansions and change with anything that changes the numbers
    assert [r.run_id for r in expand(parse_config(MINIMAL))] == [r.run_id for r in runs]
    other = expand(parse_config({**MINIMAL, "student_training": {"learning_rate": 1e-4}}))
    assert {r.run_id for r in other if r.kind == "student"}.isdisjoint({r.run_id for r in students})
    assert {r.run_id for r in other if r.kind == "teacher"} == {r.run_id for r in teachers}


def test_a_dataset_can_give_its_teacher_a_longer_budget():
    base = {**MINIMAL, "teacher_training": {"max_steps": 600}, "student_training": {"max_steps": 200}}
    runs = expand(parse_config(base))
    longer = expand(parse_config({**base, "datasets": [{"name": "tsm"}, {"name": "massive", "teacher_max_steps": 1200}]}))
    by_dataset = {r.dataset: r for r in longer if r.kind == "teacher"}
    assert by_dataset["massive"].training.max_steps == 1200 and by_dataset["tsm"].training.max_steps == 600
    # tsm's runs keep their ids (shared with the first grid); every massive run moves to the new teacher
    same = {r.run_id for r in runs if r.dataset == "tsm"}
    assert same == {r.run_id for r in longer if r.dataset == "tsm"}
    assert {r.run_id for r in runs if r.dataset == "massive"}.isdisjoint(r.run_id for r in longer if r.dataset == "massive")
    assert all(r.training.max_steps == 200 for r in longer if r.kind == "student")


def test_copy_cells_and_language_options():
    cfg = {**MINIMAL, "copy_without_finetune": True,
           "teachers": [{"name": "tiny", "model": "m", "train_languages": "seen"}],
           "eval_languages": {"unseen": "unseen", "mine": ["en-US", "de-DE"]},
           "students": {"inits": ["from-teacher"], "train_languages": ["teacher", "english"]}}
    runs = expand(parse_config(cfg))
    copies = [r for r in runs if r.kind == "copy"]
    assert len(copies) == 2 and all(c.init == "from-teacher" for c in copies)
    students = [r for r in runs if r.kind == "student"]
    assert {s.train_languages for s in students} == {"seen", "english"}
    assert students[0].eval_languages == [("unseen", "unseen"), ("mine", ["en-US", "de-DE"])]


def test_per_dataset_student_train_languages():
    # universal-ner has no UNER v1 English train file: its students train on the teacher's languages only,
    # while the other dataset keeps both, with the same run ids as without the override
    cfg = {**MINIMAL, "datasets": [{"name": "tsm"}, {"name": "universal-ner"}],
           "students": {"inits": ["from-teacher"], "train_languages": ["teacher", "english"]}}
    both = expand(parse_config(cfg))
    cfg["datasets"][1]["student_train_languages"] = ["teacher"]
    cut = expand(parse_config(cfg))
    langs = {d: {s.train_languages for s in cut if s.kind == "student" and s.dataset == d} for d in ("tsm", "universal-ner")}
    assert langs == {"tsm": {"all", "english"}, "universal-ner": {"all"}}
    assert {r.run_id for r in cut} < {r.run_id for r in both}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"schema_version": 7}, "schema_version"),
        ({"seeds": []}, "seeds"),
        ({"students": {"inits": ["from-nowhere"]}}, "students.inits.0"),
        ({"students": {"fractions": [0]}}, "fraction 0"),
        ({"bogus": 1}, "unknown key"),
        ({"teachers": [{"name": "a", "model": "x"}, {"name": "a", "model": "y"}]}, "unique"),
    ],
)
def test_schema_errors_are_one_clear_sentence(change, needle):
    with pytest.raises(PolydistillError) as err:
        parse_config({**MINIMAL, **change}, source="grid.yaml")
    message = str(err.value)
    assert needle in message and message.startswith("grid.yaml:")
    assert "\n" not in message and message.endswith(".")


def test_missing_or_broken_yaml(tmp_path):
    with pytest.raises(PolydistillError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(PolydistillError, match="not valid YAML"):
        load_config(bad)
    bad.write_text(yaml.safe_dump({"name": "x"}))
    with pytest.raises(PolydistillError, match="teachers"):
        load_config(bad)


def _record(spec, f1, curve=None):
    return {"spec": spec.model_dump(mode="json"), "label": spec.label,
            "metrics": {"groups": {name: {"f1": f1, "support": 10} for name, _ in spec.eval_languages},
                        "per_language": {"english": {"f1": f1, "support": 5}}},
            "loss_curve": curve or [], "wall_seconds": 1.0}


def test_store_and_report_shapes(tmp_path):
    cfg = parse_config({**MINIMAL, "students": {**MINIMAL["students"], "fractions": [0.1, 1.0]}})
    runs = expand(cfg)
    store = ResultStore(tmp_path)
    f1 = {"from-scratch": 0.4, "from-teacher": 0.7}
    for i, spec in enumerate(runs):
        value = 0.8 if spec.kind == "teacher" else f1[spec.init] + 0.05 * spec.kd + 0.1 * spec.fraction + 0.01 * spec.seed
        store.save(spec.run_id, _record(spec, value, [[10 * k, 2.0 / (k + 1) + i * 1e-3] for k in range(5)]))
    (tmp_path / "results" / ".half-written.json.tmp").write_text("{")  # a killed atomic write
    assert len(store.records()) == len(runs)

    table = build_table(flatten(store.records()))
    assert table.row_dims == ["model", "fraction"]
    assert [c[0] for c in table.cols] == ["massive", "tsm"]
    models = [r[0] for r in table.rows]
    assert models[0] == "teacher"
    assert models[1:] == ["from-scratch", "from-scratch + KD"] * 2 + ["from-teacher", "from-teacher + KD"] * 2
    row = ("from-teacher + KD", 1.0)
    cell = table.cells[(row, ("massive",))]
    assert sorted(cell.values) == pytest.approx([85.0, 86.0])
    assert cell.text() == "85.50 ± 0.71"
    assert table.averages()[row] == {"Avg": pytest.approx(85.5)}
    md = to_markdown(table)
    assert "| model | fraction | massive | tsm | Avg |" in md and "85.50 ± 0.71" in md
    assert r"$\pm$" in to_latex(table)

    written = write_report(tmp_path)
    with open(written["csv"]) as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 + len(table.rows)
    assert (tmp_path / "report" / "table.tex").is_file()
    assert {p.name for p in written.values() if p.suffix == ".png"} == {
        "fig2_f1_vs_fraction_tiny_massive_all.png", "fig2_f1_vs_fraction_tiny_tsm_all.png",
        "fig3_loss_curves_tiny_massive.png", "fig3_loss_curves_tiny_tsm.png",
        "f1_by_model_tiny_massive.png", "f1_by_model_tiny_tsm.png"}


def test_report_refuses_a_dir_without_results(tmp_path):
    with pytest.raises(PolydistillError, match="no results"):
        write_report(tmp_path)


def test_one_avg_column_per_eval_group():
    cfg = parse_config({**MINIMAL, "seeds": [0], "eval_languages": {"all": "all", "unseen": "unseen"}})
    records = [{"run_id": s.run_id, **_record(s, 0.5 if s.dataset == "tsm" else 0.7)} for s in expand(cfg)]
    table = build_table(flatten(records))
    assert table.col_dims == ["dataset", "eval"]
    assert table.header()[-2:] == ["Avg all", "Avg unseen"]
    assert table.averages()[table.rows[0]] == {"Avg all": pytest.approx(60.0), "Avg unseen": pytest.approx(60.0)}


def test_grid_report_cli_with_two_grids_sharing_a_work_dir(tmp_path):
    from typer.testing import CliRunner

    from polydistill.cli import app
    from polydistill.io import atomic_write_json

    store = ResultStore(tmp_path)
    for name, datasets in (("a", [{"name": "tsm"}]), ("b", [{"name": "tsm"}, {"name": "massive"}])):
        runs = expand(parse_config({**MINIMAL, "name": name, "datasets": datasets}))
        for spec in runs:  # the tsm runs are the same cells in both grids: stored once
            store.save(spec.run_id, _record(spec, 0.5))
        atomic_write_json(tmp_path / "grids" / f"{name}.json", {"runs": [{"run_id": s.run_id} for s in runs]})
    result = CliRunner().invoke(app, ["grid", "report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "# a" in result.output and "# b" in result.output
    assert (tmp_path / "report" / "a" / "table.csv").is_file() and (tmp_path / "report" / "b" / "table.tex").is_file()
    assert "| model | tsm |" in (tmp_path / "report" / "a" / "table.md").read_text()
    missing = CliRunner().invoke(app, ["grid", "report", str(tmp_path / "nothing")])
    assert missing.exit_code != 0


# ---------------------------------------------------------------- per-example predictions and claims


def _predictions(spec, quality: float, n_per_lang=(30, 20), num_labels=3, text_prefix="ex"):
    """A record's metrics.predictions: the same gold for every run (fixed seed), predictions right with
    probability ``quality`` (a per-run seed, so seeds differ)."""
    import numpy as np

    from polydistill.evaluate.metrics import classification_scores
    from polydistill.experiments.store import encode_language, encode_predictions

    gold_rng = np.random.default_rng(0)
    rng = np.random.default_rng(int(spec.run_id.split("-")[1], 16))
    groups, f1 = {}, {}
    for name, _ in spec.eval_languages:
        groups[name], pooled = {}, ([], [])
        for k, n in enumerate(n_per_lang):
            code = f"{name}-l{k}"
            gold = gold_rng.integers(0, num_labels, n).tolist()
            pred = [y if rng.random() < quality else int((y + 1) % num_labels) for y in gold]
            groups[name][code] = encode_language("sequence", gold, pred, [f"{text_prefix} {code} {i}" for i in range(n)])
            pooled[0].extend(gold)
            pooled[1].extend(pred)
        f1[name] = classification_scores(*pooled)
    return encode_predictions("sequence", [f"c{i}" for i in range(num_labels)], groups), f1


def _synthetic_store(tmp_path, seeds=(0, 1), eval_languages=None):
    """Teacher + from-scratch + from-teacher (± KD) students × two seeds, with per-example predictions."""
    from polydistill.io import atomic_write_json

    cfg = parse_config({**MINIMAL, "datasets": [{"name": "tsm"}], "seeds": list(seeds),
                        **({"eval_languages": eval_languages} if eval_languages else {})})
    runs = expand(cfg)
    quality = {"teacher": 0.95, "from-scratch": 0.35, "from-teacher": 0.8}
    store = ResultStore(tmp_path)
    for spec in runs:
        q = quality["teacher" if spec.kind == "teacher" else spec.init] + (0.05 if spec.kd else 0.0)
        record = _record(spec, q)
        record["metrics"]["predictions"], record["metrics"]["groups"] = _predictions(spec, q)  # F1 = of the predictions
        store.save(spec.run_id, record)
    atomic_write_json(tmp_path / "grids" / "t.json", {"runs": [{"run_id": s.run_id, "label": s.label} for s in runs]})
    return store, runs


def test_claims_table_from_a_synthetic_store_with_two_seeds(tmp_path):
    from typer.testing import CliRunner

    from polydistill.cli import app
    from polydistill.experiments.report import compute_claims

    _synthetic_store(tmp_path)
    assert not (tmp_path / "runs").exists()  # a results store without models is enough
    result = CliRunner().invoke(app, ["grid", "report", str(tmp_path), "--resamples", "200"])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report" / "table.md").read_text()
    assert md.index("| model | tsm |") < md.index("## Claims")  # the claims table is below the table
    assert "mean ± std over seeds 0, 1 (" in md
    assert "| claim | dataset | eval group | difference (F1 points) | 95 % CI | n examples | seeds | bootstrap | " \
           "verdict |" in result.output
    assert "init matters: from-teacher − from-scratch | tsm | all |" in md
    assert "| 50 | 2 vs 2 | paired | supported |" in md  # 2 languages × 25 examples, two seeds each side
    assert "teacher > student: teacher − from-teacher + KD" in md and "| 1 vs 2 |" in md
    claims = {(c.claim, c.a, c.b): c for c in compute_claims(ResultStore(tmp_path).records(), resamples=200)}
    assert set(claims) == {("KD helps", "from-scratch + KD", "from-scratch"),
                           ("KD helps", "from-teacher + KD", "from-teacher"),
                           ("init matters", "from-teacher", "from-scratch"),
                           ("init matters", "from-teacher + KD", "from-scratch + KD"),
                           ("init beats KD", "from-teacher", "from-scratch + KD"),
                           ("teacher > student", "teacher", "from-teacher"),
                           ("teacher > student", "teacher", "from-teacher + KD")}
    init = claims[("init matters", "from-teacher", "from-scratch")]
    assert init.verdict == "supported" and init.interval.low * 100 <= init.difference <= init.interval.high * 100
    table = build_table(flatten(ResultStore(tmp_path).records()))
    means = {row[0]: table.cells[(row, ("tsm",))].mean for row in table.rows}
    for c in claims.values():  # the bootstrap's point estimate is the table's difference of means
        assert c.difference == pytest.approx(means[c.a] - means[c.b], abs=1e-9)
    assert 30 < init.difference < 60  # ≈ (0.8 − 0.35) of the examples flip from wrong to right
    for name in ("claims.md", "claims.csv", "claims.json"):
        assert (tmp_path / "report" / name).is_file()
    import json

    saved = json.loads((tmp_path / "report" / "claims.json").read_text())
    assert saved["resamples"] == 200 and len(saved["claims"]) == 7
    assert {c["verdict"] for c in saved["claims"]} <= {"supported", "contradicted", "inconclusive"}
    rows = list(csv.DictReader((tmp_path / "report" / "claims.csv").open()))
    assert len(rows) == 7 and float(rows[0]["ci_low"]) <= float(rows[0]["difference"]) <= float(rows[0]["ci_high"])
    # the same report twice: the same claims (seeded)
    again = CliRunner().invoke(app, ["grid", "report", str(tmp_path), "--resamples", "200", "-o", str(tmp_path / "r2")])
    assert again.exit_code == 0
    assert (tmp_path / "r2" / "claims.csv").read_text() == (tmp_path / "report" / "claims.csv").read_text()
    off = CliRunner().invoke(app, ["grid", "report", str(tmp_path), "--resamples", "0", "-o", str(tmp_path / "r3")])
    assert off.exit_code == 0 and "## Claims" not in off.output and not (tmp_path / "r3" / "claims.md").exists()


def _claims_of_grid(tmp_path, cfg, student_quality):
    """Store every run of the grid with predictions of the given quality (teachers 0.9); its claims table."""
    from polydistill.experiments.report import compute_claims

    store = ResultStore(tmp_path)
    for spec in expand(cfg):
        q = 0.9 if spec.kind == "teacher" else student_quality(spec)
        record = _record(spec, q)
        record["metrics"]["predictions"], record["metrics"]["groups"] = _predictions(spec, q)
        store.save(spec.run_id, record)
    return compute_claims(store.records(), resamples=200)


def test_design_dimension_claims_pair_cells_that_differ_in_one_dimension_only(tmp_path):
    """The half-width grid's questions: relations vs TinyBERT, importance vs uniform, at every other
    dimension equal, with paired intervals."""

    cfg = parse_config({**MINIMAL, "datasets": [{"name": "tsm"}], "seeds": [0, 1],
                        "students": {"inits": ["from-teacher"], "kd": [True], "layers": [2], "hidden": [16],
                                     "width_select": ["uniform", "importance"],
                                     "objectives": {"tinybert": {}, "rel": {"att": 0, "hid": 0, "emb": 0, "rel": 1}}}})
    quality = {("uniform", "tinybert"): 0.4, ("uniform", "rel"): 0.6, ("importance", "tinybert"): 0.7,
               ("importance", "rel"): 0.7}
    claims = _claims_of_grid(tmp_path, cfg, lambda spec: quality[(spec.width_select, spec.objective)])
    by_variant = {c.variant: c for c in claims if c.claim == "relations beat TinyBERT"}
    assert set(by_variant) == {"width select uniform", "width select importance"}
    rel = by_variant["width select uniform"]  # 0.6 vs 0.4
    assert (rel.a, rel.b) == ("from-teacher + KD, objective rel", "from-teacher + KD, objective tinybert")
    assert rel.verdict == "supported" and rel.seeds == "2 vs 2" and rel.paired
    assert by_variant["width select importance"].verdict == "inconclusive"  # 0.7 vs 0.7
    importance = [c for c in claims if c.claim == "importance beats uniform"]
    assert {c.variant for c in importance} == {"objective tinybert", "objective rel"}
    assert all(c.verdict == "supported" for c in importance)
    assert not [c for c in claims if c.claim in ("relations add to TinyBERT", "two stages help")]


def test_training_languages_and_data_fraction_claims(tmp_path):
    """Table 5's students on the teacher's languages vs English only, and Figure 2's full data vs 10 %."""

    cfg = parse_config({**MINIMAL, "datasets": [{"name": "tsm"}], "seeds": [0, 1],
                        "teachers": [{"name": "tiny", "model": "m", "train_languages": "seen"}],
                        "students": {"inits": ["from-teacher"], "kd": [True], "layers": [2],
                                     "train_languages": ["teacher", "english"], "fractions": [0.1, 1.0]}})
    quality = {("seen", 1.0): 0.8, ("seen", 0.1): 0.5, ("english", 1.0): 0.6, ("english", 0.1): 0.45}
    claims = _claims_of_grid(tmp_path, cfg, lambda spec: quality[(spec.train_languages, spec.fraction)])
    languages = {c.variant: c for c in claims if c.claim == "the teacher's languages beat English only"}
    assert set(languages) == {"fraction 0.1", "fraction 1.0"}
    full = languages["fraction 1.0"]
    assert (full.a, full.b) == ("from-teacher + KD, train languages as teacher",
                                "from-teacher + KD, train languages english")
    assert full.verdict == "supported" and full.paired
    data = {c.variant: c for c in claims if c.claim == "more data helps"}
    assert set(data) == {"train languages as teacher", "train languages english"}
    assert data["train languages as teacher"].difference > data["train languages english"].difference > 0


def test_seen_minus_unseen_is_an_unpaired_claim(tmp_path):
    from polydistill.experiments.report import claims_markdown, compute_claims

    store, _ = _synthetic_store(tmp_path, seeds=(0,), eval_languages={"seen": "seen", "unseen": "unseen"})
    from polydistill.experiments.report import write_report

    write_report(tmp_path, resamples=0)
    assert "test split, seed 0 (" in (tmp_path / "report" / "table.md").read_text()  # one seed: no "mean ± std"
    claims = compute_claims(store.records(), resamples=100)
    seen = [c for c in claims if c.claim == "seen > unseen"]
    assert {c.a for c in seen} == {"teacher", "from-scratch", "from-scratch + KD", "from-teacher",
                                   "from-teacher + KD"}
    assert all(not c.paired and c.n == "50 / 50" and c.eval == "seen − unseen" for c in seen)
    md = claims_markdown(claims, 100)
    assert "| seen − unseen |" in md and "| unpaired |" in md and "each resampled on its own" in md


def test_claims_without_predictions_and_with_mismatched_examples(tmp_path):
    from polydistill.experiments.report import compute_claims

    store, runs = _synthetic_store(tmp_path, seeds=(0,))
    records = store.records()
    old = [{**r, "metrics": {k: v for k, v in r["metrics"].items() if k != "predictions"}} for r in records]
    claims = compute_claims(old, resamples=100)
    assert claims and all(c.verdict == "no predictions" and c.interval is None for c in claims)
    init = next(c for c in claims if c.claim == "init matters")
    table = build_table(flatten(records))
    means = {row[0]: table.cells[(row, ("tsm",))].mean for row in table.rows}
    assert init.difference == pytest.approx(means["from-teacher"] - means["from-scratch"])  # the table's means
    # a student evaluated on other test examples: pairing refuses it in one sentence
    scratch = next(s for s in runs if s.init == "from-scratch" and not s.kd)
    bad = [dict(r) for r in records]
    for r in bad:
        if r["run_id"] == scratch.run_id:
            r["metrics"] = {**r["metrics"], "predictions": _predictions(scratch, 0.35, text_prefix="other")[0]}
    with pytest.raises(PolydistillError, match="their test examples differ .checksum mismatch"):
        compute_claims(bad, resamples=100)


def test_predictions_of_a_massive_like_run_are_compact(tmp_path):
    """27 languages × 300 test examples, 60 intents: the whole result file stays far below 1 MB."""
    import numpy as np

    from polydistill.experiments.store import decode_predictions, encode_language, encode_predictions

    rng = np.random.default_rng(0)
    labels = [f"intent_{i:02d}_some_scenario_name" for i in range(60)]
    groups: dict = {"all": {}}
    golds = []
    for k in range(27):
        gold = rng.integers(0, 60, 300).tolist()
        golds.append(gold)
        groups["all"][f"x{k:02d}-XX"] = encode_language("sequence", gold, rng.integers(0, 60, 300).tolist(),
                                                        [f"utt {k} {i}" for i in range(300)])
    spec = expand(parse_config(MINIMAL))[0]
    record = _record(spec, 0.5)
    record["metrics"]["predictions"] = encode_predictions("sequence", labels, groups)
    path = ResultStore(tmp_path).save(spec.run_id, record)
    size = path.stat().st_size
    assert size < 40_000, size  # ≈ 27 × (2 × 403 + ~120) bytes + the label names
    task, names, decoded = decode_predictions(json.loads(path.read_text()))
    assert task == "sequence" and names == labels and [lp.n for lp in decoded["all"]] == [300] * 27
    assert [lp.gold.tolist() for lp in decoded["all"]] == golds


def test_ner_predictions_round_trip():
    from polydistill.experiments.store import decode_predictions, encode_language, encode_predictions

    gold = [[0, 1, 2], [3], [0, 0, 0, 0]]
    pred = [[0, 1, 0], [3], [1, 2, 0, 0]]
    block = encode_predictions("token", ["O", "B-PER", "I-PER", "B-LOC"],
                               {"all": {"en": encode_language("token", gold, pred, ["a b c", "d", "e f g h"])}})
    task, _, groups = decode_predictions({"metrics": {"predictions": block}})
    assert task == "token"
    (lp,) = groups["all"]
    assert [g.tolist() for g in lp.gold] == gold and [p.tolist() for p in lp.pred] == pred and lp.n == 3


def test_builtin_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    """The grid configs ship inside the package (``polydistill/configs``; the repository's ``configs/`` is a
    link to it): ``grid run cpu/table1_all_languages`` works after a plain install, from any folder."""
    from polydistill.cli import main
    from polydistill.experiments.schema import builtin_configs

    shipped = builtin_configs()
    assert "cpu/table1_all_languages" in shipped and "paper/table1_all_languages" in shipped
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "run", "cpu/table1_all_languages", "--dry-run", "--work-dir", str(tmp_path / "w")])
    assert exit_.value.code in (0, None) and "todo  teacher-" in capsys.readouterr().out
    for name, needle in [("table1_all_languages", "cpu/table1_all_languages, paper/table1_all_languages"),
                         ("nosuch", "does not exist")]:
        with pytest.raises(SystemExit) as exit_:
            main(["grid", "run", name, "--dry-run"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and needle in err and "Traceback" not in err
