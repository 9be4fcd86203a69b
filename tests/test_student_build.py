"""Weight-copy students of tiny random teachers of every supported architecture and head."""

import functools
import re

import pytest
import torch
from transformers import AutoModel

from factories import ARCHS, make_config, make_model, make_model_dir
from polydistill.architectures import task_of as task_of_model
from polydistill.errors import PolydistillError
from polydistill.modeling import auto_class
from polydistill.student import build_student, get_adapter, read_provenance

TASKS = ("sequence", "token", "base")
OUTPUT = {"sequence": "logits", "token": "logits", "base": "last_hidden_state"}


def _perturb(model, seed):
    """Random teachers have LayerNorm = 1 / biases = 0 like any fresh model; make every tensor unique."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


@functools.cache
def _teacher(arch, task, seed=0):
    model, tokenizer = make_model(arch, task, seed=seed)
    return _perturb(model, seed + 100), tokenizer


def _batch(tokenizer):
    return tokenizer(["hello world this is a test", "hola"], padding=True, return_tensors="pt")


def _forward(model, batch, task):
    with torch.no_grad():
        return getattr(model(**batch), OUTPUT[task])


def _expected(teacher, name, adapter, prov, layer_prefix):
    """The teacher slice a student tensor must equal, computed independently of the copy code."""
    width, teacher_sizes = prov["width"], prov["teacher_sizes"]
    hidden = list(range(0, teacher_sizes["hidden_size"], teacher_sizes["hidden_size"] // width["hidden_size"]))
    ffn_step = teacher_sizes["intermediate_size"] // width["intermediate_size"]
    ffn = list(range(0, teacher_sizes["intermediate_size"], ffn_step))
    head_size = teacher_sizes["head_size"]
    head_step = teacher_sizes["num_heads"] // width["num_heads"]
    dim_step = head_size // width["head_size"]
    inner = [h * head_size + d for h in range(0, teacher_sizes["num_heads"], head_step)
             for d in range(0, head_size, dim_step)]
    factorised = getattr(teacher.config, "embedding_size", None) not in (None, teacher.config.hidden_size)
    sets = {"hidden": hidden, "embed": None if factorised else hidden, "ffn": ffn, "inner": inner, None: None}
    match = re.match(rf"{re.escape(layer_prefix)}\.(\d+)\.(.*)", name)
    src = f"{layer_prefix}.{prov['teacher_layers'][int(match.group(1))]}.{match.group(2)}" if match else name
    value = teacher.state_dict()[src]
    for dim, axis in enumerate(adapter.axis_rule(name).axes):
        if sets[axis] is not None:
            index = [slice(None)] * value.dim()
            index[dim] = sets[axis]
            value = value[tuple(index)]
    return value


def _layer_prefix(model, adapter):
    return next(n for n, m in model.named_modules() if m is adapter.layers(model))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_full_size_copy_reproduces_the_teacher(arch, task):
    """Wibowo et al. 2024, §5.1 sanity: N_S = N_T, no width change -> the teacher's outputs."""
    teacher, tokenizer = _teacher(arch, task)
    built = build_student(teacher, tokenizer=tokenizer)
    assert built.provenance["teacher_layers"] == [0, 1, 2, 3]
    batch = _batch(tokenizer)
    torch.testing.assert_close(_forward(built.model, batch, task), _forward(teacher, batch, task), rtol=0, atol=1e-6)
    assert built.model is not teacher
    for (name, s), t in zip(built.model.state_dict().items(), teacher.state_dict().values(), strict=True):
        assert s.data_ptr() != t.data_ptr(), name


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_copied_tensors_equal_teacher_slices(tmp_path, arch, task):
    teacher, tokenizer = _teacher(arch, task)
    adapter = get_adapter(teacher)
    out = tmp_path / "student"
    built = build_student(teacher, out, tokenizer=tokenizer, layers=2, hidden=16, intermediate=32, heads=2)
    prov = built.provenance
    assert prov["teacher_layers"] == [1, 3]
    assert prov["width"] | {} == prov["width"] and prov["width"]["num_heads"] == 2
    assert prov["width"]["hidden_size"] == 16 and prov["width"]["head_size"] == 8
    student = built.model
    prefix = _layer_prefix(student, adapter)
    names = list(student.state_dict())
    assert any(".1." in n for n in names) and not any(f"{prefix}.2." in n for n in names)
    for name, tensor in student.state_dict().items():
        torch.testing.assert_close(tensor, _expected(teacher, name, adapter, prov, prefix), rtol=0, atol=0,
                                   msg=name)

    # Spot checks written out by hand: hidden 32->16 keeps 0,2,..,30; heads 4->2 keeps 0 and 2 whole.
    t_layers, s_layers = adapter.layers(teacher), adapter.layers(student)
    t_q, _ = adapter.qk_projections(t_layers[3]) or (None, None)
    if t_q is not None:
        s_q, s_k = adapter.qk_projections(s_layers[1])
        rows = list(range(0, 8)) + list(range(16, 24))
        assert torch.equal(s_q.weight, t_q.weight[rows][:, 0::2])
        assert torch.equal(s_q.bias, t_q.bias[rows])
    t_emb = adapter.embeddings(teacher).word_embeddings.weight
    assert torch.equal(adapter.embeddings(student).word_embeddings.weight, t_emb[:, 0::2])
    t_ffn = t_layers[1].intermediate.dense.weight
    assert torch.equal(s_layers[0].intermediate.dense.weight, t_ffn[0::2][:, 0::2])
    if arch == "deberta-v2":
        t_enc, s_enc = adapter.encoder(teacher), adapter.encoder(student)
        assert torch.equal(s_enc.rel_embeddings.weight, t_enc.rel_embeddings.weight[:, 0::2])
        assert torch.equal(s_enc.LayerNorm.weight, t_enc.LayerNorm.weight[0::2])
    if task != "base":
        assert student.config.id2label == teacher.config.id2label
        assert student.config.label2id == teacher.config.label2id

    # The written directory is an ordinary HF model dir that the Auto classes load.
    assert {"config.json", "model.safetensors", "polydistill.json", "README.md"} <= {p.name for p in out.iterdir()}
    assert any(p.name.startswith("tokenizer") for p in out.iterdir())
    loaded = auto_class(task).from_pretrained(out)
    assert type(loaded) is type(teacher) and task_of_model(loaded) == task
    batch = _batch(tokenizer)
    torch.testing.assert_close(_forward(loaded.eval(), batch, task), _forward(student, batch, task))
    assert read_provenance(out)["teacher_layers"] == [1, 3]
    assert "0-indexed [1, 3]" in (out / "README.md").read_text()


@pytest.mark.parametrize("arch", ARCHS)
def test_head_dim_shrinks_and_explicit_layers(arch):
    teacher, tokenizer = _teacher(arch, "sequence")
    adapter = get_adapter(teacher)
    built = build_student(teacher, tokenizer=tokenizer, teacher_layers=[2, 0, 3], hidden=16)
    prov = built.provenance
    assert prov["teacher_layers"] == [2, 0, 3] and prov["layer_map"] == "explicit"
    assert prov["width"]["num_heads"] == 4 and prov["width"]["head_size"] == 4
    prefix = _layer_prefix(built.model, adapter)
    for name, tensor in built.model.state_dict().items():
        torch.testing.assert_close(tensor, _expected(teacher, name, adapter, prov, prefix), rtol=0, atol=0, msg=name)
    assert _forward(built.model, _batch(tokenizer), "sequence").shape == (2, 3)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", ["sequence", "token"])
def test_from_base_copies_the_base_and_initialises_a_fresh_head(tmp_path, arch, task):
    teacher, tokenizer = _teacher(arch, task)
    # The base shares the teacher's tokenizer (the factories' tokenizer training is not deterministic).
    torch.manual_seed(7)
    base_model = _perturb(AutoModel.from_config(make_config(arch, tokenizer)).eval(), 8)
    base_dir = tmp_path / "base"
    base_model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    built = build_student(teacher, tokenizer=tokenizer, layers=2, hidden=16, init="from-base", base=str(base_dir))
    adapter = get_adapter(teacher)
    student, prov = built.model, built.provenance
    assert prov["base"] == str(base_dir) and prov["copied"] == ["embeddings", "layers"]
    s_backbone = adapter.backbone(student)
    prefix = _layer_prefix(s_backbone, adapter)
    for name, tensor in s_backbone.state_dict().items():
        if adapter.axis_rule(name).head:
            continue
        torch.testing.assert_close(tensor, _expected(base_model, name, adapter, prov, prefix), rtol=0, atol=0,
                                   msg=name)
    # The head is fresh: not the teacher's (sliced), and the same for the same seed.
    head_names = [n for n in student.state_dict() if adapter.axis_rule(n).head]
    assert head_names
    t_prefix = _layer_prefix(teacher, adapter)
    for name in head_names:
        assert not torch.equal(student.state_dict()[name], _expected(teacher, name, adapter, prov, t_prefix)), name
    again = build_student(teacher, tokenizer=tokenizer, layers=2, hidden=16, init="from-base", base=str(base_dir))
    for name in head_names:
        assert torch.equal(student.state_dict()[name], again.model.state_dict()[name])


@pytest.mark.parametrize("arch", ARCHS)
def test_from_scratch_shares_no_tensor_with_the_teacher(arch):
    teacher, tokenizer = _teacher(arch, "sequence")
    adapter = get_adapter(teacher)
    built = build_student(teacher, tokenizer=tokenizer, layers=2, init="from-scratch", seed=3)
    prefix = _layer_prefix(built.model, adapter)
    for name, tensor in built.model.state_dict().items():
        assert not torch.equal(tensor, _expected(teacher, name, adapter, built.provenance, prefix)), name
    assert built.provenance["copied"] == []
    same = build_student(teacher, tokenizer=tokenizer, layers=2, init="from-scratch", seed=3)
    other = build_student(teacher, tokenizer=tokenizer, layers=2, init="from-scratch", seed=4)
    word = "word_embeddings.weight"
    s, s2, s3 = (next(v for k, v in b.model.state_dict().items() if k.endswith(word)) for b in (built, same, other))
    assert torch.equal(s, s2) and not torch.equal(s, s3)


def test_saved_teacher_directory_round_trip(tmp_path):
    teacher_dir = make_model_dir(tmp_path, "xlm-roberta", "token")
    built = build_student(str(teacher_dir), tmp_path / "out", layers=2)
    assert built.provenance["teacher"] == str(teacher_dir)
    assert built.provenance["labels"] == ["LABEL_A", "LABEL_B", "LABEL_C"]
    assert built.tokenizer is not None and (tmp_path / "out" / "tokenizer.json").is_file()


def _variant(arch, **changes):
    model, tokenizer = make_model(arch, "sequence")
    config = model.config
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    return _perturb(type(model)(config).eval(), 1), tokenizer


@pytest.mark.parametrize(
    "arch, changes",
    [
        # DeBERTa-v2-xlarge style: conv layer after the first block, separate position projections.
        ("deberta-v2", dict(conv_kernel_size=3, share_att_key=False)),
        # ELECTRA-small style: embeddings narrower than the hidden size, with embeddings_project.
        ("electra", dict(embedding_size=16)),
    ],
    ids=["deberta-conv-pos-proj", "electra-factorised"],
)
def test_architecture_variants(arch, changes):
    teacher, tokenizer = _variant(arch, **changes)
    adapter = get_adapter(teacher)
    names = set(teacher.state_dict())
    assert any("conv.conv" in n or "embeddings_project" in n for n in names)
    batch = _batch(tokenizer)
    full = build_student(teacher, tokenizer=tokenizer)
    torch.testing.assert_close(_forward(full.model, batch, "sequence"), _forward(teacher, batch, "sequence"),
                               rtol=0, atol=1e-6)
    small = build_student(teacher, tokenizer=tokenizer, layers=2, hidden=8, intermediate=32)
    prefix = _layer_prefix(small.model, adapter)
    for name, tensor in small.model.state_dict().items():
        torch.testing.assert_close(tensor, _expected(teacher, name, adapter, small.provenance, prefix), rtol=0,
                                   atol=0, msg=name)
    assert _forward(small.model, batch, "sequence").shape == (2, 3)
    if arch == "electra":
        assert small.model.config.embedding_size == 16
        with pytest.raises(PolydistillError, match="embedding size"):
            build_student(teacher, tokenizer=tokenizer, hidden=16)


def test_layers_chosen_elsewhere_keep_their_name_and_the_package_exports_build_student():
    import polydistill

    teacher, tokenizer = _teacher("bert", "base")
    built = polydistill.build_student(teacher, tokenizer=tokenizer, teacher_layers=[0, 3], layer_map="importance")
    assert built.provenance["teacher_layers"] == [0, 3] and built.provenance["layer_map"] == "importance"
    assert built.provenance["num_layers"] == 2 and built.provenance["labels"] == []


def test_written_tokenizer_configs_name_a_class_transformers_4_and_5_load(tmp_path):
    """A tokenizer loaded as transformers 5's generic ``TokenizersBackend`` (e.g. multilingual-e5's, saved as
    ``PreTrainedTokenizerFast``) is written back under the name both 4.x (optimum) and 5.x load."""
    import json

    from transformers import AutoTokenizer

    from factories import make_model_dir
    from polydistill.student.build import build_student

    teacher = make_model_dir(tmp_path, "bert", "base", name="teacher")
    config_path = teacher / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config))
    build_student(str(teacher), tmp_path / "student", layers=1)
    written = json.loads((tmp_path / "student" / "tokenizer_config.json").read_text())
    assert written["tokenizer_class"] == "PreTrainedTokenizerFast"
    text = "hello world"
    assert AutoTokenizer.from_pretrained(tmp_path / "student")(text)["input_ids"] == \
        AutoTokenizer.from_pretrained(teacher)(text)["input_ids"]
