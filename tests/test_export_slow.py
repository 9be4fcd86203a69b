"""polydistill export on the real multilingual-e5-small encoder (slow; needs the e5 fixture), and the
torch.export-based exporter on a tiny model (slow only because that exporter takes > 10 s)."""

from __future__ import annotations

import pytest
import torch

from factories import CORPUS, make_model_dir
from polydistill.export import export_model, load_exported

pytestmark = pytest.mark.slow

MULTILINGUAL = [
    "query: how much protein should a female eat",
    "Wie spät ist es in Berlin?",
    "Ponme una alarma a las siete de la mañana.",
    "Quel temps fait-il à Paris aujourd'hui ?",
    "Habari ya asubuhi, rafiki yangu.",
    "今日は雨が降っています。",
    "Сколько стоит билет до Москвы?",
    "ok",
]


@pytest.fixture(scope="module")
def e5_exports(e5_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("e5-export")
    export_model(e5_dir, root / "fp32", quantize="none")
    export_model(e5_dir, root / "int8")
    return root


def test_e5_encoder_fp32_and_int8(e5_dir, e5_exports):
    from polydistill.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(e5_dir)
    model = load_model(e5_dir, task="base").eval()
    batch = tokenizer(MULTILINGUAL, padding=True, truncation=True, max_length=64, return_tensors="pt")
    mask = batch["attention_mask"].bool()
    with torch.inference_mode():
        reference = model(**batch).last_hidden_state
        fp32 = load_exported(e5_exports / "fp32")(**batch).last_hidden_state
        int8 = load_exported(e5_exports / "int8")(**batch).last_hidden_state
    assert (fp32 - reference)[mask].abs().max().item() <= 1e-3
    cosine = torch.nn.functional.cosine_similarity(int8[mask], fp32[mask], dim=-1)
    assert cosine.min().item() >= 0.95, cosine.min().item()
    # the mean-pooled sentence embeddings e5 is used for
    pooled = [(h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True) for h in (fp32, int8)]
    assert torch.nn.functional.cosine_similarity(*pooled, dim=-1).min().item() >= 0.98


def test_dynamo_exporter(tmp_path):
    pytest.importorskip("onnxscript")
    from polydistill.modeling import load_model, load_tokenizer

    source = make_model_dir(tmp_path, "bert", "sequence")
    result = export_model(source, tmp_path / "onnx", quantize="none", exporter="dynamo")
    assert "dynamo" in result.record["exporter"]
    tokenizer = load_tokenizer(source)
    batch = tokenizer([*CORPUS, "hello"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        reference = load_model(source).eval()(**batch).logits
        got = load_exported(tmp_path / "onnx")(**batch).logits
    assert (got - reference).abs().max().item() <= 1e-4


def test_e5_six_layer_student_int8_keeps_its_f1(e5_dir, shared_data, tmp_path):
    """The issue's bound on a small real test set: the 6-layer e5 student, fine-tuned briefly on tsm, loses
    at most 1 F1 point macro over its two languages when exported to dynamic int8 (the full-split measurement,
    −0.26, is in docs/performance.md; 300 examples per language make one flipped tweet ≈ 0.3 points, hence
    1.0 here rather than 0.5)."""
    import dataclasses

    from polydistill.data.load import load_task_data
    from polydistill.data.subsets import cap_per_language
    from polydistill.distill.finetune import finetune
    from polydistill.distill.settings import TrainSettings
    from polydistill.evaluate.evaluate import evaluate_model
    from polydistill.student.build import build_student

    data = load_task_data("tsm", languages="english,german", data_root=shared_data, fraction=0.2, seed=0)
    splits = data.splits
    splits["test"] = cap_per_language(splits["test"], 300)
    data = dataclasses.replace(data, splits=splits)
    build_student(str(e5_dir), tmp_path / "6L", layers=6)
    trained = finetune(str(tmp_path / "6L"), data, TrainSettings(output_dir=tmp_path / "student", max_steps=60, eval_steps=60,
                                                  learning_rate=2e-4, batch_size=32, max_length=64,
                                                  freeze_word_embeddings=True, precision="auto"))
    export_model(trained.output_dir, tmp_path / "int8")
    scores = {name: evaluate_model(str(path), None, data, max_length=64)
              for name, path in (("fp32", trained.output_dir), ("int8", tmp_path / "int8"))}

    def macro(report):
        return sum(v["f1"] for v in report.per_language.values()) / len(report.per_language) * 100

    assert macro(scores["fp32"]) > 45, macro(scores["fp32"])  # it learned (3 classes: chance ≈ 33)
    assert macro(scores["int8"]) >= macro(scores["fp32"]) - 1.0, (macro(scores["fp32"]), macro(scores["int8"]))


@pytest.mark.timeout(1800)
def test_e5_student_export_runtime_auto_keeps_the_fp32_students_outputs_on_real_tweets(e5_dir, shared_data,
                                                                                     tmp_path):
    """``export --runtime auto`` of the e5 6-layer half-width student: the candidates timed on this machine,
    gated on 300 real tsm test tweets in each of three languages and scripts (hidden-state cosine with the
    fp32 student ≥ 0.99), the chosen one written in its runtime's standard form and loadable."""
    from polydistill.bench.select import export_auto
    from polydistill.data import load_task_data
    from polydistill.export.runtimes import load_runtime_dir
    from polydistill.student.build import build_student

    student = tmp_path / "e5-6x192"
    build_student(str(e5_dir), student, layers=6, hidden=192, intermediate=768)
    tweets = load_task_data("tsm", languages="english,french,arabic", data_root=shared_data, purpose="evaluate")
    candidates = ["torch-fp32", "onnx-fp32", "onnx-int8", "onnx-int8-unfused"]
    result = export_auto(student, tmp_path / "auto", data=tweets, serve=[(32, 128), (1, 32)], repeats=3,
                         threads=2, candidates=candidates)
    selection = result.record["selection"]
    chosen = selection["chosen"]
    gate = selection["candidates"][chosen]["gate"]
    assert gate["passed"] and gate["mean_cosine"] >= 0.99 and gate["compared"] >= 3 * 300
    assert result.record["machine"]["label"]
    assert load_runtime_dir(tmp_path / "auto") is not None
