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


def _module_name(path: Path, package: Path) -> str:
    parts = (package.name, *path.relative_to(package).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement a module can execute, at the top or inside a function or class; imports
    under ``if TYPE_CHECKING:`` never run and are left out."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module → the modules of the same package it imports (``from pkg import sub`` names the submodule;
    the parent packages Python imports on the way are not counted)."""
    modules = {_module_name(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's package upwards
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:  # import a.b.c of a package a.b: the module a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(cycles)


def test_no_import_cycle_between_modules():
    """No circle of imports between modules, inside a package too, counting the imports inside functions
    (a function-level import hides a circle from Python's start-up, not from the design)."""
    assert import_cycles(module_graph()) == []


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub import a\n")
    (package / "sub" / "a.py").write_text("def f():\n    from pkg.sub.b import g\n")
    (package / "sub" / "b.py").write_text("from . import a\n")
    (package / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import a\n")
    (package / "sub" / "d.py").write_text("import pkg.sub.c\n")
    graph = module_graph(package)
    assert graph["pkg.sub.c"] == set() and graph["pkg.sub.d"] == {"pkg.sub.c"}
    assert import_cycles(graph) == [["pkg.sub.a", "pkg.sub.b"]]


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
