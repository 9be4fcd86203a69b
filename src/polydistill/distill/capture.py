"""Capture only what the KD loss needs, from mapped layers only, without eager attention.

Forward hooks record the embedding output (hidden_states[0]), the outputs of the mapped encoder
layers, and the outputs of their query/key projections. Attention maps are recomputed from Q and K
(QK^T/sqrt(d), masked softmax), so the forward itself keeps running on SDPA: asking the model for
``output_attentions`` would switch every layer to eager attention and materialise all L maps.
DeBERTa-v2 has no Q/K-only attention (relative-position terms), so there the maps come from
``output_attentions`` (its attention is eager anyway).

Hooks are installed once and record only inside ``with capture.recording():``, so evaluation and
saving run untouched; records are dropped at the start of each recording (nothing is cached
between steps).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import Tensor, nn

from polydistill.distill.losses import attention_maps_from_qk


def _first(output):
    return output[0] if isinstance(output, tuple | list) else output


@dataclass
class Records:
    embeddings: Tensor | None = None
    hidden: dict[int, Tensor] = field(default_factory=dict)
    query: dict[int, Tensor] = field(default_factory=dict)
    key: dict[int, Tensor] = field(default_factory=dict)


class LayerCapture:
    """Records hidden states / Q·K of ``layers`` (0-indexed encoder layers) of one model.

    ``embeddings``/``hidden``/``attention`` say which kinds are needed (a switched-off loss term
    captures nothing).
    """

    def __init__(self, model: nn.Module, layers: list[int], *, embeddings: bool, hidden: bool, attention: bool):
        from polydistill.student.adapters import get_adapter

        self.adapter = get_adapter(model)
        self.num_heads = self.adapter.num_heads(model.config)
        self.layers = list(layers)
        self.want_attention = attention
        self.records = Records()
        self._active = False
        self._handles: list = []
        encoder_layers = self.adapter.layers(model)
        n = len(encoder_layers)
        bad = [i for i in self.layers if not 0 <= i < n]
        if bad:
            raise ValueError(f"layers {bad} out of range for a {n}-layer model")
        # Q/K hooks where the architecture allows; otherwise output_attentions (see module doc).
        self.qk_available = all(self.adapter.qk_projections(encoder_layers[i]) is not None for i in self.layers)
        if embeddings:
            backbone = self.adapter.backbone(model)
            # ELECTRA with factorised embeddings: hidden_states[0] is after embeddings_project.
            source = getattr(backbone, "embeddings_project", None) or self.adapter.embeddings(model)
            self._hook(source, self._set_embeddings)
        for i in self.layers:
            layer = encoder_layers[i]
            if hidden:
                self._hook(layer, self._store(self.records_hidden, i))
            if attention and self.qk_available:
                query, key = self.adapter.qk_projections(layer)
                self._hook(query, self._store(self.records_query, i))
                self._hook(key, self._store(self.records_key, i))

    # dict accessors resolved at call time, because ``records`` is replaced every recording
    def records_hidden(self) -> dict[int, Tensor]:
        return self.records.hidden

    def records_query(self) -> dict[int, Tensor]:
        return self.records.query

    def records_key(self) -> dict[int, Tensor]:
        return self.records.key

    def _hook(self, module: nn.Module, fn) -> None:
        self._handles.append(module.register_forward_hook(fn))

    def _set_embeddings(self, module, inputs, output) -> None:
        if self._active:
            self.records.embeddings = _first(output)

    def _store(self, target, index: int):
        def hook(module, inputs, output) -> None:
            if self._active:
                target()[index] = _first(output)

        return hook

    @property
    def needs_output_attentions(self) -> bool:
        return self.want_attention and not self.qk_available

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
        if self.qk_available:
            return [
                attention_maps_from_qk(self.records.query[i], self.records.key[i], self.num_heads, token_mask, kind)
                for i in self.layers
            ]
        if kind != "probs" or model_attentions is None:
            raise ValueError("this architecture only exposes post-softmax attention probabilities")
        return [model_attentions[i] for i in self.layers]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
