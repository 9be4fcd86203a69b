"""Grid config, expansion, results store and report (no training here; see test_experiments_resume.py)."""

from __future__ import annotations

import csv
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
    for path in sorted((REPO / "configs/paper").glob("*.yaml")):
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
