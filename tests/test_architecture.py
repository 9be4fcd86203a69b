"""docs/architecture.md stays true: the floor plan (no upward import, no circle) and the recipe "add
an architecture" (an adapter registered from outside the package builds and distils a student)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "polydistill"


def _levels() -> dict[str, int]:
    """package → level, read from the floor-plan table of docs/architecture.md."""
    levels = {}
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|([^|]+)\|", line)
        if match:
            for name in re.findall(r"`(\w+)`", match.group(2)):
                levels[name] = int(match.group(1))
    return levels


def _imports() -> list[tuple[str, str, str]]:
    """(importing package, imported package, file) for every import between packages of polydistill."""
    edges = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        source = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "polydistill" and len(parts) > 1 and parts[1] != source:
                    edges.append((source, parts[1], str(rel)))
    return edges


def test_every_package_is_on_the_floor_plan():
    levels = _levels()
    packages = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
                if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and p.stem not in
                                                                       ("__init__", "__main__"))}
    assert packages - set(levels) == set(), "add the new package to the table in docs/architecture.md"


def test_imports_only_go_down():
    levels = _levels()
    upward = [f"{src} ({file}) imports {dst}" for src, dst, file in _imports()
              if src in levels and dst in levels and levels[dst] >= levels[src]]
    assert upward == []


def test_an_adapter_added_from_outside_builds_and_distils(tmp_path, monkeypatch):
    """The recipe: one ArchitectureAdapter (here a BERT-layout family under another model_type)."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    from factories import make_wordpiece_tokenizer
    from polydistill import architectures
    from polydistill.architectures.base import (
        BERT_EMBEDDING_RULES,
        BERT_LAYER_RULES,
        LINEAR_CLASSIFIER_RULES,
        POOLER_RULES,
        ArchitectureAdapter,
    )
    from polydistill.distill.kd import distill
    from polydistill.distill.settings import KDSettings, TrainSettings
    from polydistill.student.build import build_student
    from test_distill_tasks import tiny_task

    class MiniBertConfig(BertConfig):
        model_type = "mini-bert"

    class MiniBertForSequenceClassification(BertForSequenceClassification):
        config_class = MiniBertConfig

    AutoConfig.register("mini-bert", MiniBertConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(MiniBertConfig, MiniBertForSequenceClassification, exist_ok=True)
    adapter = ArchitectureAdapter(name="MiniBERT", model_types=("mini-bert",),
                                  rules=(*BERT_EMBEDDING_RULES, *BERT_LAYER_RULES, *POOLER_RULES,
                                         *LINEAR_CLASSIFIER_RULES))
    monkeypatch.setitem(architectures._BY_MODEL_TYPE, "mini-bert", adapter)

    data = tiny_task("sequence", n_train=16, n_dev=8)
    tokenizer = make_wordpiece_tokenizer()
    config = MiniBertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64, num_labels=3,
                            id2label=data.id2label, label2id=data.label2id, pad_token_id=tokenizer.pad_token_id)
    teacher = MiniBertForSequenceClassification(config).eval()
    assert architectures.get_adapter(teacher) is adapter
    built = build_student(teacher, layers=2, hidden=16, intermediate=32, tokenizer=tokenizer)
    assert built.provenance.architecture == "MiniBERT" and built.model.config.hidden_size == 16
    result = distill(teacher, built, data, TrainSettings(output_dir=tmp_path / "kd", max_steps=2, eval_steps=2,
                                                          batch_size=8, learning_rate=1e-3, logging_steps=1),
                     KDSettings(allow_untrained_teacher=True, allow_weak_teacher=True), tokenizer=tokenizer)
    assert {"loss_att", "loss_hid"} <= {k for h in result.log_history for k in h}


@pytest.mark.parametrize("name", ["IGNORE_INDEX = ", "PROVENANCE_FILE = "])
def test_one_definition_each(name):
    found = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if name in p.read_text(encoding="utf-8")]
    assert len(found) == 1, found
