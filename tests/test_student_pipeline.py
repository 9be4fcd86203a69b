"""A student directory is an ordinary Hugging Face model: ``pipeline(...)`` runs it as it is."""

import pytest

from factories import make_model_dir
from polydistill import build_student


@pytest.mark.parametrize("arch, task, pipeline_task", [
    ("bert", "sequence", "text-classification"),
    ("xlm-roberta", "token", "token-classification"),
])
def test_pipeline_runs_a_student_directory(tmp_path, arch, task, pipeline_task):
    from transformers import pipeline

    teacher = make_model_dir(tmp_path, arch, task)
    out = tmp_path / "student"
    build_student(teacher, out, layers=2, hidden=16, intermediate=32)
    runner = pipeline(pipeline_task, model=str(out), tokenizer=str(out))
    result = runner(["hello world", "hola mundo"])
    assert len(result) == 2
    labels = {f"LABEL_{c}" for c in "ABC"}
    if pipeline_task == "text-classification":
        assert {r["label"] for r in result} <= labels
    else:
        assert all(entity["entity"] in labels for sentence in result for entity in sentence)
