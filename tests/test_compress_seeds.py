"""``polydistill compress-seeds``: retention over several compress runs (seeds) of one teacher, read from
fake finished runs (report.json + evaluate-stage predictions) so that every number can be hand-checked."""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import f1_score

from polydistill.cli import main
from polydistill.compress.seeds import recipe_difference, seeds_retention
from polydistill.errors import PolydistillError

LABELS = ["a", "b", "c"]
GOLD = {"en": [0, 1, 2, 0, 1, 2, 0, 1], "de": [2, 2, 1, 0, 0, 1, 2, 0]}
TEACHER = {"en": [0, 1, 2, 0, 1, 2, 0, 0], "de": [2, 2, 1, 0, 1, 1, 2, 0]}
STUDENTS = [{"en": [0, 1, 2, 1, 1, 2, 0, 0], "de": [2, 1, 1, 0, 1, 1, 0, 0]},
            {"en": [0, 1, 1, 0, 1, 2, 0, 0], "de": [2, 2, 0, 0, 1, 1, 2, 1]}]
GROUPS = {"seen": ["en"], "unseen": ["de"], "all": ["de", "en"]}


def _evaluation(name: str, pred: dict[str, list[int]]) -> dict:
    languages = [la for la in ("de", "en") for _ in GOLD[la]]
    return {"name": name, "report": {"task": "sequence", "label_names": LABELS},
            "examples": {"true": GOLD["de"] + GOLD["en"], "pred": pred["de"] + pred["en"], "languages": languages,
                         "checksums": {"de": "sum-de", "en": "sum-en"}}}


def _fake_run(root, seed: int, student: dict, teacher: dict = TEACHER):
    (root / "stages" / "7-evaluate").mkdir(parents=True)
    report = {"dataset": "toy", "architecture": {"name": "2L-h8"}, "quality": {"groups": GROUPS},
              "settings": {"seed": seed, "teacher": "toy-teacher", "target_retention_seen": 0.95,
                           "target_retention_unseen": 0.90}}
    (root / "report.json").write_text(json.dumps(report))
    for name, pred in (("teacher", teacher), ("int8", student), ("kd", student)):
        (root / "stages" / "7-evaluate" / f"{name}.json").write_text(json.dumps(_evaluation(name, pred)))
    return root


def _macro(languages, pred):
    gold = [y for la in languages for y in GOLD[la]]
    return f1_score(gold, [y for la in languages for y in pred[la]], average="macro")


def test_retention_is_the_seed_mean_over_the_teacher_with_an_interval_around_it(tmp_path):
    runs = [_fake_run(tmp_path / f"s{i}", i, s) for i, s in enumerate(STUDENTS)]
    result = seeds_retention(runs, resamples=300)
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    for group, languages in GROUPS.items():
        g = result["groups"][group]
        per_seed = [_macro(languages, s) for s in STUDENTS]
        assert g["per_seed"] == pytest.approx(per_seed)
        assert g["teacher_f1"] == pytest.approx(_macro(languages, TEACHER))
        assert g["retention"] == pytest.approx((per_seed[0] + per_seed[1]) / 2 / _macro(languages, TEACHER))
        assert g["low"] <= g["retention"] <= g["high"] and g["low"] < g["high"]
        assert g["examples"] == sum(len(GOLD[la]) for la in languages)
    assert result["groups"]["seen"]["target"] == 0.95 and result["groups"]["all"]["target"] is None
    assert result["groups"]["seen"]["met"] == (result["groups"]["seen"]["retention"] >= 0.95)


def test_a_perfect_student_keeps_all_of_the_teacher_on_every_resample(tmp_path):
    runs = [_fake_run(tmp_path / f"s{i}", i, TEACHER) for i in range(2)]
    seen = seeds_retention(runs, model="kd", resamples=200)["groups"]["seen"]
    assert seen["retention"] == pytest.approx(1.0) and seen["low"] == pytest.approx(1.0)
    assert seen["high"] == pytest.approx(1.0) and seen["met"] is True


def test_the_same_seed_twice_another_setting_or_another_teacher_is_refused(tmp_path):
    with pytest.raises(PolydistillError, match="seed 0 appears in more than one run"):
        seeds_retention([_fake_run(tmp_path / "a", 0, STUDENTS[0]), _fake_run(tmp_path / "b", 0, STUDENTS[1])])
    other_recipe = _fake_run(tmp_path / "e", 1, STUDENTS[1])
    report = json.loads((other_recipe / "report.json").read_text())
    report["settings"]["budget_minutes"] = 5.0
    (other_recipe / "report.json").write_text(json.dumps(report))
    with pytest.raises(PolydistillError, match="differ in budget_minutes, not only in --seed"):
        seeds_retention([_fake_run(tmp_path / "f", 0, STUDENTS[0]), other_recipe])
    other_teacher = {**TEACHER, "en": [1] * 8}
    with pytest.raises(PolydistillError, match="different teachers"):
        seeds_retention([_fake_run(tmp_path / "c", 0, STUDENTS[0]),
                         _fake_run(tmp_path / "d", 1, STUDENTS[1], teacher=other_teacher)])


def test_cli_prints_the_table_writes_json_and_refuses_bad_runs_in_one_sentence(tmp_path, capsys):
    runs = [str(_fake_run(tmp_path / f"s{i}", i, s)) for i, s in enumerate(STUDENTS)]

    def run(*args):
        with pytest.raises(SystemExit) as code:
            main(["compress-seeds", *args])
        captured = capsys.readouterr()
        return code.value.code or 0, captured.out, captured.err

    code, out, err = run(*runs, "--resamples", "100", "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    assert "| unseen | 8 |" in out and "Runs:" in out
    assert json.loads((tmp_path / "r.json").read_text())["groups"]["all"]["examples"] == 16
    for args, message in [([runs[0]], "at least two compress runs"),
                          ([runs[0], str(tmp_path / "missing")], "is not a directory"),
                          ([*runs, "--model", "teacher"], "not a student of a compress run"),
                          ([runs[0], str(tmp_path)], "no report.json")]:
        code, out, err = run(*args)
        assert code == 2, err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _recipe(run, **settings):
    report = json.loads((run / "report.json").read_text())
    report["settings"].update(settings)
    (run / "report.json").write_text(json.dumps(report))
    return run


def test_recipe_difference_is_the_paired_difference_of_seed_means(tmp_path, capsys):
    a = [_recipe(_fake_run(tmp_path / f"a{i}", i, s), unlabelled_data="toy:de") for i, s in enumerate(STUDENTS)]
    b = [_fake_run(tmp_path / "b0", 0, TEACHER)]
    result = recipe_difference(a, b, resamples=300)
    assert result["differs"] == {"unlabelled_data": ["toy:de", None]}
    for group, languages in GROUPS.items():
        g = result["groups"][group]
        mean_a = sum(_macro(languages, s) for s in STUDENTS) / 2
        assert g["difference"] == pytest.approx(mean_a - _macro(languages, TEACHER))
        assert g["low"] <= g["difference"] <= g["high"]
    assert result["groups"]["all"]["verdict"] == "contradicted"  # the students are worse than B (the teacher)
    same = recipe_difference(b, [_fake_run(tmp_path / "b1", 1, TEACHER)], resamples=50)["groups"]["seen"]
    assert same["difference"] == 0 and same["low"] == 0 and same["high"] == 0 and same["verdict"] == "inconclusive"
    with pytest.raises(PolydistillError, match="different teachers"):
        recipe_difference(a, [_fake_run(tmp_path / "c", 0, STUDENTS[0], teacher={**TEACHER, "en": [1] * 8})])
    with pytest.raises(SystemExit) as code:
        main(["compress-seeds", *map(str, a), "--against", str(b[0]), "--resamples", "50"])
    assert (code.value.code or 0) == 0
    out = capsys.readouterr().out
    assert "A and B differ in `unlabelled_data`" in out and "| all | 16 |" in out


def test_the_docs_retention_tables_equal_the_committed_runs(monkeypatch):
    """docs/reproduction.md's compress-seeds blocks are `polydistill compress-seeds` of the committed runs
    (results/half-width/compress/<name>-s<seed>/: report.json and the evaluate-stage predictions)."""
    from pathlib import Path

    from polydistill.compress.seeds import render_markdown
    from polydistill.reporting.docs import docs_blocks

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    text = (repo / "docs" / "reproduction.md").read_text(encoding="utf-8")
    blocks = docs_blocks(text, "docs/reproduction.md", kind="compress-seeds")
    assert blocks, "docs/reproduction.md shows no compress-seeds block"
    for name, body in blocks.items():
        runs = sorted(str(p.relative_to(repo)) for p in (repo / "results" / "half-width" / "compress").glob(f"{name}-s*"))
        assert len(runs) >= 2, f"{name}: fewer than two committed seeds"
        assert body.strip() == render_markdown(seeds_retention(runs)).strip(), \
            f"{name}: run polydistill compress-seeds {' '.join(runs)} and paste its table"


def test_the_docs_recipe_comparisons_equal_the_committed_runs(monkeypatch):
    """docs/reproduction.md's compress-against blocks (``A..B``) are `polydistill compress-seeds A --against B` of
    the committed runs under results/token-tasks/<dataset>/."""
    from pathlib import Path

    from polydistill.compress.seeds import render_difference
    from polydistill.reporting.docs import docs_blocks

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    text = (repo / "docs" / "reproduction.md").read_text(encoding="utf-8")
    blocks = docs_blocks(text, "docs/reproduction.md", kind="compress-against")
    assert blocks, "docs/reproduction.md shows no compress-against block"
    for name, body in blocks.items():
        a, b = name.split("..")
        runs = {p.name: str(p.relative_to(repo)) for p in (repo / "results" / "token-tasks").glob("*/*")}
        assert a in runs and b in runs, f"{name}: the runs are not committed under results/token-tasks/"
        assert body.strip() == render_difference(recipe_difference([runs[a]], [runs[b]])).strip(), \
            f"{name}: run polydistill compress-seeds {runs[a]} --against {runs[b]} and paste its table"


def test_a_term_weight_set_on_one_side_is_named_alone():
    from polydistill.compress.seeds import _flat

    a, b = _flat({"kd_weights": {"att": 0.0}, "seed": 0}), _flat({"kd_weights": {}, "seed": 0})
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {"kd_weights.att"}
