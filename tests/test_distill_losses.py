"""Golden values for every KD loss term, against hand computation on small fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from polydistill.distill import losses

# Batch of 2, length 3; the second sequence has one padded position.
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_masked_mse_ignores_padding_by_hand():
    s = torch.zeros(2, 3, 2)
    t = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]], [[0.0, 1.0], [2.0, 2.0], [100.0, -100.0]]])
    # real tokens: 5 positions × 2 features = 10 values; squares: 1+4, 0, 9, 1, 4+4 → 23
    assert losses.masked_mse(s, t, MASK).item() == pytest.approx(23 / 10)


def test_hidden_loss_averages_layers_and_applies_projection():
    proj = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[2.0], [-1.0]]))  # W·h = (2h, -h)
    s1 = torch.ones(2, 3, 1)
    s2 = torch.full((2, 3, 1), 2.0)
    t = torch.zeros(2, 3, 2)
    # layer 1: W·1 = (2, -1) → per token 4+1 = 5 over 2 features → mse 2.5
    # layer 2: W·2 = (4, -2) → 16+4 = 20 / 2 = 10; mean over layers = 6.25
    value = losses.hidden_loss([s1, s2], [t, t], MASK, proj)
    assert value.item() == pytest.approx(6.25)
    # padding stays excluded even with a huge student value there
    s1_bad = s1.clone()
    s1_bad[1, 2] = 1e6
    assert losses.hidden_loss([s1_bad, s2], [t, t], MASK, proj).item() == pytest.approx(6.25)
    value.backward()
    assert proj.weight.grad is not None  # W is trained through the loss


def test_embedding_loss_identity_when_no_projection():
    s = torch.tensor([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    t = torch.zeros_like(s)
    # real: 1,2,3,4,5 → (1+4+9+16+25)/5 = 11
    assert losses.embedding_loss(s, t, MASK).item() == pytest.approx(11.0)


def test_attention_loss_masks_rows_and_keys_and_averages_heads_layers():
    b, h, length = 2, 2, 3
    s = torch.zeros(b, h, length, length)
    t = torch.zeros(b, h, length, length)
    t[0, 0] = 1.0  # example 0 (no padding), head 0: 9 valid pairs each error 1 → head sum 9
    t[1, 1, :2, :2] = 2.0  # example 1, head 1: 4 valid pairs each error 4 → 16
    t[1, :, 2, :] = 50.0  # padded query row: ignored
    t[1, :, :, 2] = 50.0  # padded key column: ignored
    # valid pairs per head: 9 (ex 0) + 4 (ex 1) = 13; two heads → 26 elements; total error 25
    layer = losses.attention_loss([s], [t], MASK)
    assert layer.item() == pytest.approx(25 / 26)
    # per-head mean equals the mean over heads of per-head MSEs (equal counts): (9/13 + 16/13)/2
    assert layer.item() == pytest.approx((9 / 13 + 16 / 13) / 2)
    # two layers: second layer has zero error → mean over layers halves it
    assert losses.attention_loss([s, s], [t, s], MASK).item() == pytest.approx(25 / 26 / 2)


def test_prediction_loss_mse_sequence_and_token_masking():
    s = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    assert losses.prediction_loss(s, t).item() == pytest.approx((1 + 4 + 4) / 4)
    # token level: only labelled positions count
    s_tok = torch.zeros(1, 3, 2)
    t_tok = torch.tensor([[[1.0, 1.0], [9.0, 9.0], [3.0, 0.0]]])
    labelled = torch.tensor([[True, False, True]])
    assert losses.prediction_loss(s_tok, t_tok, label_mask=labelled).item() == pytest.approx((1 + 1 + 9) / 4)


def test_prediction_loss_kl_with_temperature_by_hand():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[2.0, 0.0]])
    temperature = 2.0
    p = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]  # softmax(t / T)
    q = [0.5, 0.5]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    value = losses.prediction_loss(s, t, kind="kl", temperature=temperature)
    assert value.item() == pytest.approx(kl * temperature**2, rel=1e-5)


def test_classification_loss_ignores_unlabelled_positions():
    logits = torch.tensor([[[0.0, 0.0], [5.0, -5.0], [0.0, math.log(3.0)]]])
    labels = torch.tensor([[0, -100, 1]])
    expected = (math.log(2) + -math.log(3 / 4)) / 2  # CE at positions 0 and 2
    assert losses.classification_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_attention_maps_from_qk_by_hand():
    # one head of size 1: q = (1, 2), k = (1, 0) → scores q_i k_j: [[1, 0], [2, 0]]
    q = torch.tensor([[[1.0], [2.0]]])
    k = torch.tensor([[[1.0], [0.0]]])
    mask = torch.tensor([[1, 1]])
    scores = losses.attention_maps_from_qk(q, k, 1, mask, "scores")
    assert torch.allclose(scores[0, 0], torch.tensor([[1.0, 0.0], [2.0, 0.0]]))
    probs = losses.attention_maps_from_qk(q, k, 1, mask, "probs")
    assert probs[0, 0, 0, 0].item() == pytest.approx(math.e / (math.e + 1))
    # a padded key gets zero probability
    probs_pad = losses.attention_maps_from_qk(q, k, 1, torch.tensor([[1, 0]]), "probs")
    assert torch.allclose(probs_pad[0, 0, :, 0], torch.ones(2))
