"""Capture only what the KD loss needs, from mapped layers only, without eager attention everywhere.

Hidden states: forward hooks on the embedding output (hidden_states[0]) and on the mapped encoder
layers only.

Attention maps: asking a model for ``output_attentions`` switches *every* layer to eager attention
and returns post-dropout maps of all L layers. Instead the model runs on ``polydistill_kd``, an
attention function registered with transformers' ``AttentionInterface``: in a mapped layer, while
recording, it computes scores = QK^T/sqrt(d), the masked softmax, keeps the map (pre-dropout
probabilities, or the pre-softmax scores) and finishes the layer with that same map — the map is
computed once and serves both the forward pass and the loss; every other layer (the teacher's
unmapped half), and every layer outside recording (evaluation), runs PyTorch SDPA.
If an architecture does not route its attention through ``AttentionInterface`` but exposes Q/K
projections, the maps are recomputed from hooked Q/K outputs (``losses.attention_maps_from_qk``)
while the forward stays on SDPA. DeBERTa-v2 (relative-position terms, eager-only) falls back to
``output_attentions``.

Hooks record only inside ``with capture.recording():``; ``clear()`` drops the records after each
loss, so nothing is kept between steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from polydistill.architectures import get_adapter

if TYPE_CHECKING:
    from transformers import PreTrainedModel

from polydistill.distill.losses import attention_maps_from_qk

KD_ATTENTION = "polydistill_kd"
_RECORDER = "_polydistill_recorder"


def _first(output):
    return output[0] if isinstance(output, tuple | list) else output


def kd_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """The ``polydistill_kd`` attention: eager with map recording in mapped layers, else SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    recorder = getattr(module, _RECORDER, None)
    if recorder is None or not recorder.active:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    masked = scores
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # sdpa-style mask: True = may attend
            masked = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            masked = scores + attention_mask
    probs = masked.softmax(dim=-1)
    recorder.store(scores if recorder.kind == "scores" else probs)
    weights = nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def register_kd_attention() -> None:
    """Make ``polydistill_kd`` known to transformers (attention function + SDPA-style boolean masks)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(KD_ATTENTION, kd_attention_forward)
    AttentionMaskInterface.register(KD_ATTENTION, sdpa_mask)


class _Recorder:
    def __init__(self, capture: LayerCapture, index: int, kind: str):
        self.capture, self.index, self.kind = capture, index, kind

    @property
    def active(self) -> bool:
        return self.capture._active

    def store(self, attention_map: Tensor) -> None:
        self.capture.records.maps[self.index] = attention_map


@dataclass
class Records:
    embeddings: Tensor | None = None
    hidden: dict[int, Tensor] = field(default_factory=dict)
    maps: dict[int, Tensor] = field(default_factory=dict)
    query: dict[int, Tensor] = field(default_factory=dict)
    key: dict[int, Tensor] = field(default_factory=dict)
    value: dict[int, Tensor] = field(default_factory=dict)


class LayerCapture:
    """Records what the KD loss needs from ``layers`` (0-indexed encoder layers) of one model.

    ``embeddings``/``hidden``/``attention``/``qkv`` say which kinds are needed (a switched-off loss
    term captures nothing); ``attention_kind`` is ``probs`` or ``scores``; ``mode`` forces an attention
    capture path (``interface``, ``qk``; default: the best available).
    """

    def __init__(self, model: nn.Module, layers: list[int], *, embeddings: bool, hidden: bool, attention: bool,
                 attention_kind: str = "probs", mode: str | None = None, qkv: bool = False):
        self.model = model
        self.adapter = get_adapter(model)
        self.num_heads = self.adapter.num_heads(model.config)
        self.layers = list(layers)
        self.want_attention = attention
        self.records = Records()
        self._active = False
        self._handles: list = []
        self._tagged: list[nn.Module] = []
        self._previous_attention: str | None = None
        encoder_layers = self.adapter.layers(model)
        n = len(encoder_layers)
        bad = [i for i in self.layers if not 0 <= i < n]
        if bad:
            raise ValueError(f"layers {bad} out of range for a {n}-layer model")
        qk_ok = self.adapter.query_key is not None
        self.mode = mode or ("interface" if qk_ok and self._routes_attention(model) else "qk" if qk_ok else "outputs")
        if embeddings:
            # hidden_states[0]: after an embedding projection where the architecture has one (ELECTRA)
            self._hook(self.adapter.embedding_output(model), self._set_embeddings)
        for i in self.layers:
            layer = encoder_layers[i]
            if hidden:
                self._hook(layer, self._store("hidden", i))
            if attention and self.mode == "interface":
                assert self.adapter.query_key is not None  # the interface mode needs it (qk_ok)
                attention_module = layer.get_submodule(self.adapter.query_key[0].rsplit(".", 1)[0])
                setattr(attention_module, _RECORDER, _Recorder(self, i, attention_kind))
                self._tagged.append(attention_module)
            elif attention and self.mode == "qk":
                projections = self.adapter.qk_projections(layer)
                assert projections is not None  # the qk mode needs them (qk_ok)
                query, key = projections
                self._hook(query, self._store("query", i))
                self._hook(key, self._store("key", i))
            if qkv:  # the projections' outputs, for relation KD
                query, key, value = self.adapter.qkv_projections(layer)
                if not (attention and self.mode == "qk"):
                    self._hook(query, self._store("query", i))
                    self._hook(key, self._store("key", i))
                self._hook(value, self._store("value", i))
        if attention and self.mode == "interface":
            register_kd_attention()
            hf_model = cast("PreTrainedModel", model)  # the interface mode is transformers' attention interface
            self._previous_attention = hf_model.config._attn_implementation
            hf_model.set_attn_implementation(KD_ATTENTION)

    @staticmethod
    def _routes_attention(model: nn.Module) -> bool:
        """Whether the model dispatches attention through transformers' AttentionInterface."""
        return bool(getattr(model, "_supports_attention_backend", False)) and hasattr(model, "set_attn_implementation")

    def _hook(self, module: nn.Module, fn) -> None:
        self._handles.append(module.register_forward_hook(fn))

    def _set_embeddings(self, module, inputs, output) -> None:
        if self._active:
            self.records.embeddings = _first(output)

    def _store(self, kind: str, index: int):
        def hook(module, inputs, output) -> None:
            # first call per recording wins: DeBERTa-v2 (share_att_key) applies its query/key
            # projections again to the relative-position embeddings after the tokens
            store = getattr(self.records, kind)
            if self._active and index not in store:
                store[index] = _first(output)

        return hook

    @property
    def needs_output_attentions(self) -> bool:
        return self.want_attention and self.mode == "outputs"

    @contextlib.contextmanager
    def recording(self) -> Iterator[Records]:
        self.records = Records()
        self._active = True
        try:
            yield self.records
        finally:
            self._active = False

    def clear(self) -> None:
        """Drop the records (the loss graph keeps what backward needs)."""
        self.records = Records()

    def hidden_states(self) -> list[Tensor]:
        return [self.records.hidden[i] for i in self.layers]

    def attention_maps(self, token_mask: Tensor, kind: str, model_attentions=None) -> list[Tensor]:
        """(B, H, L, L) maps of the mapped layers, in ``layers`` order."""
        if self.mode == "interface":
            return [self.records.maps[i] for i in self.layers]
        if self.mode == "qk":
            return [
                attention_maps_from_qk(self.records.query[i], self.records.key[i], self.num_heads, token_mask, kind)
                for i in self.layers
            ]
        if kind != "probs" or model_attentions is None:
            raise ValueError("this architecture only exposes post-softmax attention probabilities")
        return [model_attentions[i] for i in self.layers]

    def remove(self) -> None:
        """Remove hooks and recorders and restore the model's attention implementation."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module in self._tagged:
            delattr(module, _RECORDER)
        self._tagged.clear()
        if self._previous_attention is not None:
            cast("PreTrainedModel", self.model).set_attn_implementation(self._previous_attention)
            self._previous_attention = None
