"""A student of a sentence-transformers model (multilingual-e5: Transformer → mean Pooling → Normalize) keeps
the pipeline: sentence-transformers loads it with the same modules, at the student's width, and its
embeddings are normalised (without modules.json it would load as Transformer + mean pooling, norms ≈ 3.4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factories import make_model_dir
from polydistill.errors import PolydistillError

MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
           {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]


def e5_like(root: Path, modules=MODULES) -> Path:
    """A tiny BERT encoder laid out as multilingual-e5 is on the hub (modules.json and module folders)."""
    model = make_model_dir(root, "bert", "base", name="e5-like")
    hidden = json.loads((model / "config.json").read_text())["hidden_size"]
    (model / "modules.json").write_text(json.dumps(modules))
    (model / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": hidden,
                                                                "pooling_mode_mean_tokens": True}))
    (model / "2_Normalize").mkdir()
    return model


def test_a_narrower_student_loads_in_sentence_transformers_with_its_pooling_and_normalize(tmp_path):
    st = pytest.importorskip("sentence_transformers")
    from polydistill.student.build import build_student

    teacher = e5_like(tmp_path)
    hidden = json.loads((teacher / "config.json").read_text())["hidden_size"] // 2
    build_student(str(teacher), tmp_path / "student", layers=1, hidden=hidden, intermediate=hidden * 2)
    model = st.SentenceTransformer(str(tmp_path / "student"), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"]
    embeddings = model.encode(["hello world", "bonjour le monde"], convert_to_tensor=True)
    assert embeddings.shape == (2, hidden)
    assert embeddings.norm(dim=-1).sub(1).abs().max().item() < 1e-5


def test_a_dense_module_cannot_follow_a_narrower_student(tmp_path):
    from polydistill.student.build import build_student

    dense = [*MODULES[:2], {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    teacher = e5_like(tmp_path, dense)
    with pytest.raises(PolydistillError, match="2_Dense .* cannot use"):
        build_student(str(teacher), tmp_path / "student", layers=1, hidden=16, intermediate=32)
    assert not (tmp_path / "student").exists()
