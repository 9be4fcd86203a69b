"""Capture of mapped layers only; attention maps from the recording attention function (or Q/K
recomputation) equal the eager maps, while unmapped layers and evaluation stay on SDPA."""

from __future__ import annotations

import pytest
import torch

from factories import make_model
from polydistill.distill.capture import KD_ATTENTION, LayerCapture


def _batch(tokenizer):
    return tokenizer(["hello world this is a test", "wake me"], padding=True, return_tensors="pt")


@pytest.mark.parametrize("arch, mode", [("bert", "interface"), ("xlm-roberta", "interface"), ("electra", "interface"),
                                        ("bert", "qk")])
@pytest.mark.parametrize("kind", ["probs", "scores"])
def test_captured_maps_equal_eager_attention_and_only_mapped_layers_are_recorded(arch, mode, kind):
    model, tokenizer = make_model(arch, "sequence")
    assert model.config._attn_implementation == "sdpa"
    enc = _batch(tokenizer)
    mask = enc["attention_mask"]
    with torch.no_grad():
        plain = model(**enc).logits
    capture = LayerCapture(model, [1, 3], embeddings=True, hidden=True, attention=True, attention_kind=kind,
                           mode=mode)
    assert capture.mode == mode and not capture.needs_output_attentions
    with torch.no_grad(), capture.recording() as records:
        logits = model(**enc).logits
    assert torch.allclose(logits, plain, atol=1e-5)  # capturing does not change the forward
    assert sorted(records.hidden) == [1, 3]
    assert sorted(records.maps if mode == "interface" else records.query) == [1, 3]
    maps = capture.attention_maps(mask, kind)
    capture.remove()
    assert model.config._attn_implementation == "sdpa"  # restored

    model.set_attn_implementation("eager")  # reference: the model's own eager maps and hidden states
    with torch.no_grad():
        ref = model(**enc, output_attentions=True, output_hidden_states=True)
    pair = (mask[:, None, :, None] * mask[:, None, None, :]).bool().expand_as(maps[0])
    for j, layer in enumerate([1, 3]):
        assert torch.allclose(capture.hidden_states()[j], ref.hidden_states[layer + 1], atol=1e-5)
        probs = maps[j]
        if kind == "scores":  # softmax of the captured scores (padded keys masked) = eager probabilities
            probs = maps[j].masked_fill(~mask.bool()[:, None, None, :], float("-inf")).softmax(-1)
        assert torch.allclose(probs[pair], ref.attentions[layer][pair], atol=1e-6)
    assert torch.allclose(records.embeddings, ref.hidden_states[0])


def test_interface_mode_only_records_while_recording_and_unmapped_layers_untagged():
    model, tokenizer = make_model("bert", "sequence")
    capture = LayerCapture(model, [2], embeddings=False, hidden=False, attention=True)
    assert model.config._attn_implementation == KD_ATTENTION
    layers = model.bert.encoder.layer
    assert hasattr(layers[2].attention.self, "_polydistill_recorder")
    assert not any(hasattr(layers[i].attention.self, "_polydistill_recorder") for i in (0, 1, 3))
    with torch.no_grad():
        model(**_batch(tokenizer))  # outside recording: plain SDPA, nothing kept
    assert capture.records.maps == {}
    capture.remove()
    assert not hasattr(layers[2].attention.self, "_polydistill_recorder")


def test_switched_off_kinds_not_hooked():
    model, tokenizer = make_model("bert", "sequence")
    capture = LayerCapture(model, [0], embeddings=False, hidden=True, attention=False)
    assert len(capture._handles) == 1 and model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        model(**_batch(tokenizer))
    assert capture.records.hidden == {}


def test_deberta_falls_back_to_output_attentions():
    model, tokenizer = make_model("deberta-v2", "sequence")
    capture = LayerCapture(model, [0, 2], embeddings=False, hidden=True, attention=True)
    assert capture.needs_output_attentions
    enc = _batch(tokenizer)
    with torch.no_grad(), capture.recording():
        out = model(**enc, output_attentions=True)
    maps = capture.attention_maps(enc["attention_mask"], "probs", out.attentions)
    assert maps[1] is out.attentions[2]
    with pytest.raises(ValueError):
        capture.attention_maps(enc["attention_mask"], "scores", out.attentions)
