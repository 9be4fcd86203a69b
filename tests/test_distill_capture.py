"""Capture of mapped layers only, attention maps recomputed from Q/K while the forward stays on SDPA."""

from __future__ import annotations

import pytest
import torch

from factories import make_model
from polydistill.distill.capture import LayerCapture


def _batch(tokenizer):
    return tokenizer(["hello world this is a test", "wake me"], padding=True, return_tensors="pt")


@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
@pytest.mark.parametrize("kind", ["probs", "scores"])
def test_qk_maps_equal_eager_attention_and_only_mapped_layers_are_recorded(arch, kind):
    model, tokenizer = make_model(arch, "sequence")
    assert model.config._attn_implementation == "sdpa"
    enc = _batch(tokenizer)
    mask = enc["attention_mask"]
    capture = LayerCapture(model, [1, 3], embeddings=True, hidden=True, attention=True)
    assert not capture.needs_output_attentions
    with torch.no_grad(), capture.recording() as records:
        model(**enc)
    assert sorted(records.hidden) == [1, 3] and sorted(records.query) == [1, 3]
    maps = capture.attention_maps(mask, kind)
    assert model.config._attn_implementation == "sdpa"  # capture did not force eager attention

    # reference: the eager model's own maps / hidden states; scores rebuilt by hand from eager q, k
    model.set_attn_implementation("eager")
    with torch.no_grad():
        ref = model(**enc, output_attentions=True, output_hidden_states=True)
    pair = (mask[:, None, :, None] * mask[:, None, None, :]).bool().expand_as(maps[0])
    for j, layer in enumerate([1, 3]):
        assert torch.allclose(capture.hidden_states()[j], ref.hidden_states[layer + 1], atol=1e-5)
        if kind == "probs":
            assert torch.allclose(maps[j][pair], ref.attentions[layer][pair], atol=1e-6)
        else:  # softmax of the captured scores (padded keys masked) reproduces the eager probabilities
            masked = maps[j].masked_fill(~mask.bool()[:, None, None, :], float("-inf")).softmax(-1)
            assert torch.allclose(masked[pair], ref.attentions[layer][pair], atol=1e-6)
    assert torch.allclose(records.embeddings, ref.hidden_states[0])


def test_nothing_recorded_outside_recording_and_switched_off_kinds_not_hooked():
    model, tokenizer = make_model("bert", "sequence")
    capture = LayerCapture(model, [0], embeddings=False, hidden=True, attention=False)
    assert len(capture._handles) == 1  # one layer-output hook; no Q/K, no embeddings
    with torch.no_grad():
        model(**_batch(tokenizer))
    assert capture.records.hidden == {}
    capture.remove()
    assert capture._handles == []


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
