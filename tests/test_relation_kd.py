"""MiniLMv2 relation KD (the ``rel`` term): golden values on tiny tensors, the relation-head re-split
(width- and head-count independence), and end to end on SDPA models without attention maps, at half
width without a projection, and on DeBERTa-v2."""

from __future__ import annotations

import math

import pytest
import torch

from polydistill.distill import losses
from polydistill.distill.kd import distill
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.distill.trainer import default_relation_layer
from polydistill.student.build import build_student
from test_distill_tasks import tiny_model, tiny_task


def test_relations_golden_value():
    # one relation head, two tokens, width 2: x = [[1, 0], [0, 1]] → scores = I / sqrt(2)
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.ones(1, 2)
    rel = losses.self_relations(x, 1, mask).exp()
    a, b = math.exp(2**-0.5), 1.0
    assert rel[0, 0, 0, 0].item() == pytest.approx(a / (a + b), rel=1e-6)
    # a padded key gets no probability; a padded query row does not count in the loss
    rel_pad = losses.self_relations(x, 1, torch.tensor([[1, 0]])).exp()
    assert rel_pad[0, 0, 0].tolist() == pytest.approx([1.0, 0.0])


def test_relation_loss_golden_and_zero_for_identical_inputs():
    torch.manual_seed(0)
    t = [torch.randn(2, 3, 8) for _ in range(3)]
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert losses.relation_loss(t, t, mask, 4).item() == pytest.approx(0.0, abs=1e-6)
    s = [torch.zeros(2, 3, 8) for _ in range(3)]  # uniform student relations over the real keys
    # KL(T ‖ uniform) = Σ p log p + log(n_keys), averaged over heads and real query rows, summed over Q, K, V
    expected = 0.0
    for x in t:
        logp = losses.self_relations(x, 4, mask)
        p = logp.exp()
        n_keys = mask.sum(-1)[:, None, None].float()
        kl = (torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1) + n_keys.log())
        expected += kl[mask.bool()[:, None, :].expand(-1, 4, -1)].mean().item()
    assert losses.relation_loss(s, t, mask, 4).item() == pytest.approx(expected, rel=1e-5)


def test_relation_heads_resplit_makes_widths_and_head_counts_independent():
    torch.manual_seed(1)
    mask = torch.ones(1, 5)
    teacher = [torch.randn(1, 5, 32) for _ in range(3)]  # e.g. 4 heads × 8
    student = [torch.randn(1, 5, 16) for _ in range(3)]  # e.g. 2 heads × 8, half the width
    value = losses.relation_loss(student, teacher, mask, 4)  # 4 relation heads: 8 and 4 dims each
    assert torch.isfinite(value) and value.item() > 0
    assert losses.self_relations(student[0], 4, mask).shape == losses.self_relations(teacher[0], 4, mask).shape
    with pytest.raises(ValueError, match="do not divide"):
        losses.self_relations(student[0], 3, mask)


def test_default_relation_layer_follows_minilmv2():
    assert default_relation_layer(12) == 11 and default_relation_layer(6) == 5 and default_relation_layer(24) == 20


def _settings(out):
    return TrainSettings(output_dir=out, max_steps=3, eval_steps=3, logging_steps=1, learning_rate=1e-3, batch_size=8)


@pytest.mark.parametrize("arch", ["bert", "deberta-v2"])
def test_relation_kd_alone_at_half_width_without_maps_or_projection(tmp_path, arch):
    data = tiny_task("sequence", n_train=24, n_dev=8)
    teacher, tokenizer = tiny_model(data, arch=arch)
    # half width and half the heads: neither attention maps nor a projection could compare these
    built = build_student(teacher, layers=2, hidden=16, intermediate=32, heads=2, tokenizer=tokenizer)
    kd = KDSettings(att=0, hid=0, emb=0, pred=0, ce=1, rel=1, allow_untrained_teacher=True,
                    allow_weak_teacher=True, teacher_cache=False)
    calls = {"output_attentions": 0}
    original = teacher.forward

    def spy(*args, **kwargs):  # on the teacher instance only (the student shares its class)
        calls["output_attentions"] += bool(kwargs.get("output_attentions"))
        return original(*args, **kwargs)

    teacher.forward = spy
    result = distill(teacher, built, data, _settings(tmp_path / "kd"), kd, tokenizer=tokenizer)
    rel = [h["loss_rel"] for h in result.log_history if "loss_rel" in h]
    assert len(rel) == 3 and all(math.isfinite(v) and v > 0 for v in rel)
    assert calls["output_attentions"] == 0  # relations come from the Q/K/V projections, not from maps
    assert result.extra["projection"] is None  # no W: the relation term needs none
    if arch == "bert":
        assert teacher.config._attn_implementation == "sdpa"


def test_relation_kd_with_the_teacher_cache_matches_the_live_teacher(tmp_path):
    data = tiny_task("sequence", n_train=24, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    common = dict(att=0, hid=0, emb=0, rel=1, allow_untrained_teacher=True, allow_weak_teacher=True)
    runs = {}
    for name, cache in (("live", False), ("cached", True)):
        built = build_student(teacher, layers=2, hidden=16, intermediate=32, tokenizer=tokenizer)
        result = distill(teacher, built, data, _settings(tmp_path / name),
                         KDSettings(teacher_cache=cache, teacher_cache_dtype="float32", **common), tokenizer=tokenizer)
        runs[name] = [h["loss_rel"] for h in result.log_history if "loss_rel" in h]
    assert runs["cached"] == pytest.approx(runs["live"], rel=1e-4)
