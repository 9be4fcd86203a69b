"""A compress setting is written once, as a field of ``CompressSettings``: the command's flag (name, aliases,
default, help), the stages whose done.json records it and its fingerprint rule all derive from the field, and
the fingerprints and stage records of committed runs are what they were."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from pydantic import Field

from polydistill.cli import app, main
from polydistill.cli import options as opt
from polydistill.compress import stages
from polydistill.compress.plan import (
    STAGES,
    CompressSettings,
    declared,
    settings_identity,
    stage_fields,
    used_by,
)

NOT_FLAGS = {"teacher": "the MODEL argument (or --model)", "training": "Training's own flags",
             "progress": "library calls only"}
COMMITTED = sorted(Path(__file__).resolve().parents[1].glob("results/*/compress/*/report.json"))


def _compress_options() -> dict:
    command = typer.main.get_command(app).commands["compress"]
    return {p.name: p for p in command.params}


def test_every_setting_is_one_flag_with_the_fields_default_and_help_and_declares_its_stages():
    options = _compress_options()
    required = {"teacher": "t", "dataset": "d", "out": "o"}
    defaults = CompressSettings(**required)
    for name, field in CompressSettings.model_fields.items():
        assert field.description, f"{name} has no help"
        stages_of = declared(CompressSettings, "stages")[name]
        assert stages_of and set(stages_of) <= {*STAGES, "run", "report"}, name
        if name in NOT_FLAGS:
            assert name not in options or options[name].param_type_name == "argument", name
            continue
        option = options[name]
        assert option.help == field.description, name
        assert option.opts[0] == (declared(CompressSettings, "cli")[name] or [f"--{name.replace('_', '-')}"])[0]
        if field.is_required():
            assert option.required, name
            continue
        given = {} if option.default is None else {name: option.default}  # what the command passes untouched
        assert getattr(CompressSettings(**required, **given), name) == getattr(defaults, name), name


def test_a_new_field_is_a_flag_a_stage_setting_and_a_fingerprint_rule_with_nothing_else_written():
    class Extended(CompressSettings):
        kd_knob: int = Field(7, ge=1, description="A new KD knob.",
                             json_schema_extra=used_by("kd", "bench", fingerprint="unless-default"))

    option = next(p for p in opt.settings_options(Extended) if p.name == "kd_knob")
    assert option.default.default == 7 and option.default.param_decls == ("--kd-knob",)
    assert option.default.help == "A new KD knob." and option.annotation is int
    assert stage_fields("kd", Extended)[-1] == "kd_knob" and "kd_knob" in stage_fields("bench", Extended)
    assert "kd_knob" not in stage_fields("plan", Extended)
    ctx = SimpleNamespace(settings=Extended(teacher="t", dataset="d", out="o", kd_knob=8))
    assert stages.stage_settings(ctx, "kd")["kd_knob"] == 8
    at_default = Extended(teacher="t", dataset="d", out="o")
    assert at_default.identity() == CompressSettings(teacher="t", dataset="d", out="o").identity()  # old runs resume
    assert ctx.settings.identity()["kd_knob"] == 8
    with pytest.raises(ValueError, match="names the stages that read it"):
        used_by("kd-typo")


def test_declared_stages_and_fingerprint_rules_are_the_recorded_ones():
    # the settings each done.json recorded before the declarations moved onto the fields
    recorded = {
        "plan": {"size", "layers", "hidden", "intermediate", "target_speedup", "speedup_on", "speedup_repeats",
                 "budget_minutes", "bench_lengths", "bench_batch_size", "bench_threads", "target_params",
                 "languages", "unseen_languages", "vocab_coverage", "wordfreq", "wordfreq_words",
                 "prune_rounds",  # declared since --prune-rounds (issue #32); recorded only when not 1
                 "heads"},  # declared since --heads (issue #36); recorded only when not the teacher's
        "vocab": {"languages", "unseen_languages", "vocab_coverage", "wordfreq", "wordfreq_words"},
        "depth": {"layer_map", "calibration_size", "seed"},
        "width": {"width_select", "calibration_size", "seed"},
        "kd": {"kd_weights", "fraction", "max_dev_per_language", "allow_untrained_teacher", "allow_weak_teacher",
               "unlabelled_data", "unlabelled_max", "seed", "training",
               "teacher_cache_gb"},  # read by KD, never recorded in its done.json: it decides nothing
        "int8": {"runtime"},  # declared since --runtime (issue #36); recorded only when not the default
        "evaluate": {"max_test_per_language"},
        "bench": {"bench_lengths", "bench_batch_size", "bench_repeats", "bench_threads"},
    }
    assert {name: set(stage_fields(name)) for name in STAGES} == recorded
    values = CompressSettings(teacher="t", dataset="d", out="o").model_dump(mode="json")
    unfingerprinted = {"out", "threads", "overwrite", "push_to_hub", "progress", "target_retention_seen",
                       "target_retention_unseen", "target_wall_minutes", "teacher_cache_gb"}
    later = {"unlabelled_data", "unlabelled_max", "runtime", "prune_rounds", "heads"}  # added after runs were recorded
    assert set(settings_identity(values)) == set(values) - unfingerprinted - later
    assert {"unlabelled_data", "unlabelled_max"} <= set(settings_identity({**values, "unlabelled_data": "x",
                                                                           "unlabelled_max": 3}))
    # a setting declared recorded="unless-default" is named in its stages' done.json only when not at its default
    assert {k for k, rule in declared(CompressSettings, "recorded").items() if rule} == {"prune_rounds", "heads"}
    plain = SimpleNamespace(settings=CompressSettings(teacher="t", dataset="d", out="o"))
    assert "prune_rounds" not in stages.stage_settings(plain, "plan")
    for rounds in (3, "auto"):
        ctx = SimpleNamespace(settings=CompressSettings(teacher="t", dataset="d", out="o", prune_rounds=rounds))
        assert stages.stage_settings(ctx, "plan") == {**stages.stage_settings(plain, "plan"), "prune_rounds": rounds}
        assert ctx.settings.identity()["prune_rounds"] == rounds


@pytest.mark.skipif(not COMMITTED, reason="no committed compress reports")
@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_runs_keep_their_stage_records_and_settings(path):
    report = json.loads(path.read_text(encoding="utf-8"))
    settings = CompressSettings(**report["settings"])
    dumped = settings.model_dump(mode="json")
    assert {k: v for k, v in dumped.items() if k in report["settings"]} == report["settings"]
    defaults = CompressSettings(teacher="t", dataset="d", out="o").model_dump(mode="json")
    assert all(dumped[k] == defaults[k] for k in set(dumped) - set(report["settings"]))  # fields added since
    ctx = SimpleNamespace(settings=settings)
    for stage in report["stages"]:
        assert stages.stage_settings(ctx, stage["stage"]) == stage["settings"], stage["stage"]
    assert settings.identity() == settings_identity(report["settings"])


@pytest.mark.parametrize("args, message", [
    (["--kd-term", "rel"], "NAME=WEIGHT such as rel=1.0, got 'rel' (--kd-term)"),
    (["--bench-lengths", "16,x"], "comma-separated integers such as 32,128, got '16,x' (--bench-lengths)"),
    (["--layers", "0"], "greater than or equal to 1 (--layers)"),
    (["--size", "huge"], "'tiny', 'small' or 'base' (--size)"),
])
def test_a_bad_value_is_one_sentence_naming_the_flag(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["compress", "teacher", "--dataset", "d", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


def test_the_command_builds_the_settings_the_library_gets(monkeypatch, tmp_path):
    seen = []

    def fake(settings, on_event=None):
        seen.append(settings)
        raise SystemExit(0)

    monkeypatch.setattr("polydistill.compress.compress", fake)
    with pytest.raises(SystemExit):
        main(["compress", "-m", "t", "-d", "d", "-o", str(tmp_path), "-l", "de", "--unseen-languages", "en,fr",
              "--kd-term", "rel=0.5", "--kd-term", "att=0", "--bench-lengths", "128,16", "--no-wordfreq",
              "--lr", "1e-3", "--max-steps", "5"])
    s = seen[0]
    assert (s.teacher, s.dataset, s.languages, s.unseen_languages) == ("t", "d", "de", ["en", "fr"])
    assert s.kd_weights == {"rel": 0.5, "att": 0.0} and s.bench_lengths == [16, 128] and s.wordfreq is False
    assert (s.training.learning_rate, s.training.max_steps, s.training.precision) == (1e-3, 5, "auto")
    assert s.model_dump(exclude={"teacher", "dataset", "out", "languages", "unseen_languages", "kd_weights",
                                 "bench_lengths", "wordfreq", "training"}) == \
        CompressSettings(teacher="t", dataset="d", out=tmp_path).model_dump(
            exclude={"teacher", "dataset", "out", "languages", "unseen_languages", "kd_weights", "bench_lengths",
                     "wordfreq", "training"})


def test_teacher_cache_gb_is_a_flag_that_reaches_kd_and_identifies_nothing(monkeypatch, tmp_path, capsys):
    from polydistill.compress.plan import fixed_schedule

    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    assert "--teacher-cache-gb" in capsys.readouterr().out
    seen = []

    def fake(settings, on_event=None):
        seen.append(settings)
        raise SystemExit(0)

    monkeypatch.setattr("polydistill.compress.compress", fake)
    with pytest.raises(SystemExit):
        main(["compress", "-m", "t", "-d", "d", "-o", str(tmp_path), "--teacher-cache-gb", "12.5"])
    s = seen[0]
    ctx = SimpleNamespace(settings=s, width_changes=True, heads_change=False)
    assert stages.kd_settings(ctx, fixed_schedule(s.training)).teacher_cache_gb == 12.5
    default = CompressSettings(teacher="t", dataset="d", out=tmp_path)
    assert s.teacher_cache_gb == 12.5 and default.teacher_cache_gb == 4.0
    assert s.identity() == default.identity()  # a cache budget changes no result: the same run resumes
    assert stages.stage_settings(ctx, "kd") == stages.stage_settings(SimpleNamespace(settings=default), "kd")
