"""Language-specific students as grid cells (Singh et al. 2023): expansion, a tiny grid run end to end (tiny random
BERT teacher without an MLM head, invented MASSIVE-format data, both tasks), and the paper's claims table on a
synthetic store."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from factories import CORPUS, make_model_dir
from polydistill.errors import PolydistillError
from polydistill.experiments.eliquare_claims import (
    ELIQUARE_CLAIMS,
    LOW_RESOURCE,
    PREFIX,
    eliquare_claim_rows,
    eliquare_claims_markdown,
    lm_students_markdown,
    paper_value,
)
from polydistill.experiments.grid import expand
from polydistill.experiments.report import build_table, flatten, write_report
from polydistill.experiments.runner import run_grid
from polydistill.experiments.schema import parse_config
from polydistill.experiments.store import ResultStore
from test_experiments import _predictions

LOCALES = ("fr-FR", "sw-KE")
# an intent and its annotated utterance, built from words the tiny tokenizer knows
CUES = {
    "alarm_set": "wake me up at [time : seven] tomorrow morning",
    "play_music": "play some [music_genre : jazz] music in the kitchen",
    "weather_query": "what is the weather like in [place_name : paris] today",
}


def write_massive(root: Path, per_split=(12, 6, 6)) -> Path:
    """Invented MASSIVE-layout records (utt, annot_utt, intent, partition) for LOCALES."""
    rng = random.Random(0)
    folder = root / "massive" / "data"
    folder.mkdir(parents=True)
    for locale in LOCALES:
        lines = []
        for partition, n in zip(("train", "dev", "test"), per_split, strict=True):
            for i in range(n):
                intent = sorted(CUES)[i % 3]
                annot = f"{CUES[intent]} {rng.choice(CORPUS)}"
                utt = annot.replace("[", "").replace("]", "").replace(" : ", " ").replace(":", "")
                utt = " ".join(w for w in utt.split() if w not in ("time", "music_genre", "place_name"))
                lines.append(json.dumps({"id": str(len(lines)), "locale": locale, "partition": partition,
                                         "intent": intent, "utt": utt, "annot_utt": annot}))
        with gzip.open(folder / f"{locale}.jsonl.gz", "wt", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    return root


def grid_dict(tmp_path: Path) -> dict:
    teacher = make_model_dir(tmp_path / "models", "bert", "base")  # no MLM head: lm-distill fits one
    training = {"max_steps": 4, "learning_rate": 3e-3, "batch_size": 4, "eval_steps": 2, "max_length": 32,
                "logging_steps": 1}
    return {
        "name": "cpu-eliquare-table5",
        "data_root": str(write_massive(tmp_path / "data")),
        "teachers": [{"name": "tiny", "model": str(teacher)}],
        "datasets": [{"name": "massive"}, {"name": "massive-slots"}],
        "seeds": [0],
        "students": None,
        "language_students": {
            "languages": ["sw-KE"], "layers": 2,
            "variants": {"triplet": {"vocab": "pre"}, "vocab-post": {"vocab": "post"}, "vocab-none": {}},
            "lm_training": {"max_steps": 3, "batch_size": 4, "eval_steps": 2, "max_length": 32, "logging_steps": 1},
            "fit_teacher_head_steps": 3, "vocab_min_sentence_freq": 0.0,
        },
        "teacher_training": training,
        "student_training": training,
        "kd": {"att": 1.0, "hid": 1.0, "emb": 1.0, "pred": 1.0},
        "torch_threads": 1,
        "teacher_gate_margin": None,  # 36 invented lines make no real teacher: this grid tests the plumbing
    }


def test_expansion_is_one_block_per_language_with_baselines():
    config = {"name": "t", "teachers": [{"name": "e5", "model": "m"}], "seeds": [0, 1, 2], "students": None,
              "datasets": [{"name": "massive"}, {"name": "massive-slots"}],
              "language_students": {"languages": ["fr-FR", "sw-KE"],
                                    "variants": {"triplet": {"vocab": "pre"}, "no-ce": {"alpha_ce": 0}}}}
    runs = expand(parse_config(config))
    teachers = [r for r in runs if r.kind == "teacher"]
    assert len(teachers) == 2 * 2  # datasets × languages, one seed
    assert len(runs) == 4 + 4 * (2 + 2) * 3  # + per block: (variants + baselines) × seeds
    for t in teachers:
        assert t.train_languages == [t.eval_languages[0][0]] and t.eval_languages[0][1] == t.train_languages
    students = [r for r in runs if r.kind == "student"]
    for s in students:
        teacher = next(t for t in teachers if t.run_id == s.teacher_run)
        assert (s.dataset, s.train_languages) == (teacher.dataset, teacher.train_languages) and s.layers == 6
    lm = [s for s in students if s.lm is not None]
    assert {s.init for s in lm} == {"lm-distill"} and {s.base for s in lm} == {"m"}
    assert {(s.init, s.kd) for s in students if s.lm is None} == {("from-base", False), ("from-teacher", True)}
    # one distillation per (language, recipe): shared by both tasks and every fine-tuning seed
    keys = {s.lm.distill_key("m") for s in lm}
    assert len(keys) == 2 * 2
    assert "sw-KE" in lm[0].label or "fr-FR" in lm[0].label
    # post-distillation reduction distils exactly what the unreduced student does
    post = parse_config({**config, "language_students": {"languages": ["fr-FR"], "variants": {
        "a": {"vocab": "post"}, "b": {"vocab": "none"}}}})
    assert len({s.lm.distill_key("m") for s in expand(post) if s.lm}) == 1
    # a baseline restricted to some languages (the costly privileged KD on the low-resource pair only)
    section = config["language_students"]
    only = parse_config({**config, "language_students": {**section, "baseline_languages": {"privileged": ["sw-KE"]}}})
    kd = [s for s in expand(only) if s.kd]
    assert {s.train_languages[0] for s in kd} == {"sw-KE"} and len(kd) == 2 * 3  # datasets × seeds
    assert len(expand(only)) == len(runs) - len(kd)
    for wrong, message in (({"privileged": ["de-DE"]}, "not in languages"),
                           ({"multilingual": ["fr-FR"]}, "not in baselines")):
        with pytest.raises(PolydistillError, match=message):
            parse_config({**config, "language_students": {**section, "baselines": ["privileged"],
                                                          "baseline_languages": wrong}})
    # the ordinary students grid and language students do not mix
    with pytest.raises(PolydistillError, match="students: null"):
        parse_config({**config, "students": {"inits": ["from-teacher"]}})
    with pytest.raises(PolydistillError, match="language_students.corpus.splits"):
        parse_config({**config, "language_students": {"languages": ["fr-FR"], "corpus": {"splits": ["test"]}}})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eliquare")
    config = grid_dict(tmp)
    work = tmp / "work"
    summary = run_grid(parse_config(config), work)
    return {"tmp": tmp, "config": config, "work": work, "summary": summary}


def test_tiny_grid_runs_end_to_end(tiny):
    specs = expand(parse_config(tiny["config"]))
    assert len(specs) == 2 * (1 + 3 + 2) and len(tiny["summary"].finished) == len(specs)
    records = {r["run_id"]: r for r in ResultStore(tiny["work"]).records()}
    assert set(records) == {s.run_id for s in specs}
    lm = {(r["spec"]["dataset"], r["spec"]["lm"]["variant"]): r for r in records.values() if r["spec"].get("lm")}
    assert len(lm) == 6
    for (_, variant), rec in lm.items():
        info = rec["lm_student"]
        assert info["variant"] == variant and info["language"] == "sw-KE"
        assert rec["metrics"]["groups"].keys() == {"sw-KE"} and rec["student_provenance"] is not None
        assert info["corpus"]["lines"] == 18  # train + dev inputs of sw-KE, never its test split
        assert "test split excluded" in info["corpus"]["provenance"]
        assert info["lm_distill"]["teacher_head"] == "fitted"
        fit = info["lm_distill"]["teacher_head_fit"]
        assert fit["batches"] == 3 and fit["mlm_loss_last"] <= fit["mlm_loss_first"]
        assert info["lm_distill"]["uniform_mlm_loss"] > 0
        assert info["lm_distill"]["train_seconds"] > 0
        if variant == "vocab-none":
            assert info["vocab_reduction"] is None
        else:
            reduction = info["vocab_reduction"]
            assert reduction["vocab_after"] < reduction["vocab_before"]
            assert reduction["where"].startswith("pre" if variant == "triplet" else "post")
    # both tasks share each distillation; post shares the unreduced one
    for variant in ("triplet", "vocab-post", "vocab-none"):
        assert lm[("massive", variant)]["lm_student"]["init_dir"] == lm[("massive-slots", variant)]["lm_student"][
            "init_dir"]
    assert lm[("massive", "vocab-post")]["lm_student"]["lm_distill"] == lm[("massive", "vocab-none")]["lm_student"][
        "lm_distill"]
    assert lm[("massive", "triplet")]["lm_student"]["lm_distill"]["vocab_size"] < \
        lm[("massive", "vocab-none")]["lm_student"]["lm_distill"]["vocab_size"]
    root = tiny["work"] / "lm-students"
    assert len(list(root.glob("lm-*.json"))) == 2 and len(list(root.glob("teacher-*.json"))) == 1
    assert len(list(root.glob("post-*.json"))) == 1 and len(list(root.glob("corpus-sw-KE-*.txt"))) == 1
    slots = next(r for r in records.values() if r["spec"]["dataset"] == "massive-slots" and r["spec"]["kind"] == "teacher")
    assert json.loads(json.dumps(slots["metrics"]["predictions"]))  # token-task predictions stored too
    # the table: a row per model and variant, one column per task × language
    table = build_table(flatten(list(records.values())))
    assert "lm" in table.row_dims
    assert {r[0] for r in table.rows} == {"teacher", "from-base", "from-teacher + KD", "lm-distill"}
    assert {c for c in table.cols} == {("massive",), ("massive-slots",)} or all("sw-KE" in c for c in table.cols)
    # re-running finishes nothing new; the report has the claims and the lm-distilled inits
    assert run_grid(parse_config(tiny["config"]), tiny["work"]).finished == []
    written = write_report(tiny["work"], resamples=50)
    text = written["eliquare_claims"].read_text()
    assert "Pre-distillation VocabReduce trains faster" in text and "| sw-KE | triplet |" in text


# ------------------------------------------------------------------------------------------- claims


def _records(table: str, variants: dict, quality, languages=LOW_RESOURCE, seeds=(0, 1, 2), n=(200,),
             lm_seconds=None) -> list[dict]:
    cfg = parse_config({"name": PREFIX + table, "teachers": [{"name": "e5", "model": "m"}], "seeds": list(seeds),
                        "students": None, "datasets": [{"name": "massive"}, {"name": "massive-slots"}],
                        "language_students": {"languages": list(languages), "variants": variants}})
    out = []
    for spec in expand(cfg):
        q = quality(spec)
        predictions, f1 = _predictions(spec, q, n)
        record = {"run_id": spec.run_id, "spec": spec.model_dump(mode="json"), "label": spec.label,
                  "metrics": {"groups": {g: {"f1": f1[g]["f1"] if isinstance(f1[g], dict) else f1[g]}
                                         for g in f1}, "predictions": predictions}}
        if spec.lm is not None:
            # a run shared by several grids is one record: every grid gives it the same time
            seconds = {"triplet": 20.0, **(lm_seconds or {})}.get(spec.lm.variant, 100.0)
            record["lm_student"] = {"variant": spec.lm.variant, "language": spec.lm.language,
                                    "vocab": spec.lm.settings.vocab, "init_dir": f"/x/{spec.lm.variant}-{spec.lm.language}",
                                    "corpus": {"lines": 100}, "vocab_reduction": None,
                                    "lm_distill": {"train_seconds": seconds, "vocab_size": 1000, "best_val_loss": 1.0,
                                                   "teacher_head": "fitted", "uniform_mlm_loss": 6.9,
                                                   "teacher_head_fit": {"mlm_loss_first": 7.0, "mlm_loss_last": 5.0}}}
        out.append(record)
    return out


def _rows(rows, claim, language="sl-SL", task="massive (Task 1)"):
    return next(r for r in rows if r.claim.startswith(claim) and r.language == language and r.task in (task, "both"))


def test_eliquare_claims_on_a_synthetic_store():
    table4 = _records("table4", {"triplet": {"vocab": "pre"}},
                      lambda s: {"teacher": 0.85, "student": 0.6}[s.kind] if s.lm is None and s.init != "from-teacher"
                      else 0.86 if s.lm else 0.8, languages=("fr-FR", "sl-SL"), n=(3000,))
    table5 = _records("table5", {"triplet": {"vocab": "pre"}, "vocab-post": {"vocab": "post"}, "vocab-none": {}},
                      lambda s: 0.7 if s.lm is None else {"triplet": 0.5, "vocab-post": 1.0, "vocab-none": 1.0}[
                          s.lm.variant], lm_seconds={"triplet": 20.0, "vocab-post": 300.0, "vocab-none": 300.0})
    ablation = {"triplet": {"vocab": "pre"}, "equal": {"vocab": "pre", "alpha_ce": 1, "alpha_mlm": 1},
                "no-ce": {"vocab": "pre", "alpha_ce": 0, "alpha_mlm": 1},
                "no-cos": {"vocab": "pre", "alpha_ce": 1, "alpha_mlm": 1, "alpha_cos": 0},
                "no-mlm": {"vocab": "pre", "alpha_ce": 1, "alpha_mlm": 0}}
    q6 = {"triplet": 0.8, "equal": 0.8, "no-ce": 0.8, "no-cos": 0.6, "no-mlm": 0.4}
    table6 = _records("table6", ablation, lambda s: 0.7 if s.lm is None else q6[s.lm.variant])
    taus = {f"tau-{t}": {"vocab": "pre", "temperature": float(t)} for t in ("0.5", "1", "3", "4")}
    table7 = _records("table7", {**taus, "triplet": {"vocab": "pre"}},
                      lambda s: 0.7 if s.lm is None else 0.9 if s.lm.variant == "triplet" else 0.6)
    grids = {PREFIX + "table4": table4, PREFIX + "table5": table5, PREFIX + "table6": table6,
             PREFIX + "table7": table7}
    rows = eliquare_claim_rows(grids, resamples=200)
    # on par: its interval lies above 2 points below the teacher; beats the multilingual student
    par = _rows(rows, "Language-specific student on par")
    assert par.verdict == "reproduced" and par.low > -2 and par.seeds == "3 / 1"
    assert par.paper == "+0.39 (93.65 vs 93.26)"
    assert _rows(rows, "Language-specific student beats").verdict == "reproduced"
    assert _rows(rows, "Beyond the paper").verdict.startswith("reported (no claim)")
    assert _rows(rows, "Language-specific student on par", language="nl-NL").verdict == "not run"
    # pre costs 30 points here: not reproduced; post ≈ unreduced; pre trains 15× faster
    assert _rows(rows, "Pre-distillation VocabReduce costs nothing").verdict == "not reproduced"
    assert _rows(rows, "Post-distillation VocabReduce").verdict == "reproduced"
    faster = _rows(rows, "Pre-distillation VocabReduce trains faster", language="sw-KE")
    assert faster.verdict == "reproduced" and faster.difference == pytest.approx(20 / 300)
    assert _rows(rows, "Removing L_ce hurts").verdict == "inconclusive"
    assert _rows(rows, "Removing L_cos hurts").verdict == "reproduced"
    assert _rows(rows, "L_mlm matters most").verdict == "reproduced"
    for x in ("0.5", "1", "3", "4"):
        assert _rows(rows, f"τ = 2 beats τ = {x}", task="massive-slots (Task 2)").verdict == "reproduced"
    per_claim = {c.text: len(c.languages) * (1 if c.kind == "faster" else 2) for c in ELIQUARE_CLAIMS}
    assert len(rows) == sum(per_claim.values())
    md = eliquare_claims_markdown(rows, 200)
    assert md.count("\n| ") == len(rows) and "200 resamples" in md
    assert eliquare_claim_rows(grids, resamples=200) == rows  # deterministic
    assert paper_value("table7", "tau-0.5", "sw-KE", "massive-slots") == 84.51
    inits = lm_students_markdown(table6)
    assert inits is not None and inits.count("\n| ") == 5 * 2 and "fitted: 7.00 → 5.00, 6.90" in inits


# ------------------------------------------------------------------------------------------- configs


def test_shipped_eliquare_configs():
    """Both setups ship Tables 4–7; the CPU grids share their teachers and baseline cells (one work dir), their
    corpus is never a test split, and their claims' rows are all in the grids."""
    from polydistill.experiments.schema import builtin_configs, load_config

    shipped = {k: load_config(p) for k, p in builtin_configs().items() if "/eliquare_" in k}
    assert set(shipped) == {f"{s}/eliquare_table{t}" for s in ("cpu", "paper") for t in (4, 5, 6, 7)}
    for name, config in shipped.items():
        section = config.language_students
        assert section is not None and "test" not in section.corpus.splits and len(config.seeds) == 3
        assert {d.name for d in config.datasets} == {"massive", "massive-slots"}
        if name.startswith("paper/"):
            assert {t.model for t in config.teachers} == {"bert-base-multilingual-cased", "xlm-roberta-base"}
            assert section.lm_training.epochs == 10 and section.lm_training.batch_size * section.lm_training.grad_accum == 1600
    cpu = {k.split("_")[-1]: expand(c) for k, c in shipped.items() if k.startswith("cpu/")}
    ids = {t: {s.run_id for s in specs} for t, specs in cpu.items()}
    table4_teachers = {s.run_id for s in cpu["table4"] if s.kind == "teacher"}
    for t in ("table5", "table6", "table7"):
        assert {s.run_id for s in cpu[t] if s.kind == "teacher"} <= table4_teachers
        # the triplet (pre-distillation VocabReduce, τ 2) students of sl-SL and sw-KE are Table 4's runs
        assert {s.run_id for s in cpu[t] if s.lm and s.lm.variant == "triplet"} <= ids["table4"]
    variants = {t: {s.lm.variant for s in specs if s.lm} for t, specs in cpu.items()}
    for claim in ELIQUARE_CLAIMS:
        assert {term.variant for term in claim.terms if term.variant} <= variants[claim.table], claim.text
    # every (claim, language, term) has its cells in the CPU grid: no claim row is "not run" by design
    def model_of(spec):
        if spec.kind == "teacher":
            return "teacher", ""
        if spec.lm is not None:
            return "lm-distill", spec.lm.variant
        return ("from-teacher + KD" if spec.kd else spec.init), ""

    cells = {t: {(*model_of(s), s.train_languages[0]) for s in specs} for t, specs in cpu.items()}
    for claim in ELIQUARE_CLAIMS:
        for language in claim.languages:
            for term in claim.terms:
                assert (term.model, term.variant, language) in cells[claim.table], (claim.text, language, term)
