"""Width reduction: which teacher elements a narrower student keeps (Wibowo et al. 2024, §2.2, Xu et al. 2024).

A :class:`WidthPlan` lists the kept indices per dimension. The residual (hidden) index set is shared
by the whole model so the residual stream stays aligned; the FFN and head sets may differ per
student layer (importance selection produces such plans), but their sizes cannot, because a Hugging
Face config has one ``intermediate_size`` and one ``num_attention_heads``.

:func:`uniform_plan` keeps evenly spaced elements, ``floor(j·n/k)`` for j = 0..k−1: the first element
is always kept and 4→2 keeps indices 0 and 2. Heads keep their count and lose head dimensions (the
same evenly spaced dimensions inside every head) unless fewer heads are asked for, in which case
whole heads are kept, evenly spaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polydistill.errors import require


def evenly_spaced(n: int, k: int) -> list[int]:
    """k of the indices 0..n−1, evenly spaced: floor(j·n/k), j = 0..k−1."""
    require(1 <= k <= n, f"cannot keep {k} of {n} elements")
    return [j * n // k for j in range(k)]


@dataclass
class WidthPlan:
    """Kept teacher indices for every dimension that can shrink.

    hidden: kept residual indices (shared everywhere: embeddings, LayerNorms, Q/K/V inputs, ...).
    intermediate: per student layer, kept FFN units.
    heads: per student layer, kept teacher head ids.
    head_dim: kept indices inside a head (shared by all kept heads).
    head_dims: optional, per student layer and kept head, that head's own kept indices (same count as
    ``head_dim``); importance selection sets it because which dimensions matter differs per head.
    """

    hidden: list[int]
    intermediate: list[list[int]]
    heads: list[list[int]]
    head_dim: list[int]
    method: str = "uniform"
    details: dict[str, Any] = field(default_factory=dict)
    head_dims: list[list[list[int]]] | None = None

    @property
    def hidden_size(self) -> int:
        return len(self.hidden)

    @property
    def intermediate_size(self) -> int:
        return len(self.intermediate[0])

    @property
    def num_heads(self) -> int:
        return len(self.heads[0])

    @property
    def head_size(self) -> int:
        return len(self.head_dim)

    def inner(self, layer: int, teacher_head_size: int) -> list[int]:
        """Kept indices of the all-head (Q/K/V output) dimension in student layer ``layer``."""
        if self.head_dims is not None:
            return [h * teacher_head_size + d for h, dims in zip(self.heads[layer], self.head_dims[layer], strict=True)
                    for d in dims]
        return [h * teacher_head_size + d for h in self.heads[layer] for d in self.head_dim]

    def is_identity(self, teacher_config) -> bool:
        """True when nothing shrinks and nothing is reordered."""
        n_heads = teacher_config.num_attention_heads
        return (
            self.hidden == list(range(teacher_config.hidden_size))
            and all(s == list(range(teacher_config.intermediate_size)) for s in self.intermediate)
            and all(s == list(range(n_heads)) for s in self.heads)
            and self.head_dim == list(range(teacher_config.hidden_size // n_heads))
            and (self.head_dims is None or all(d == self.head_dim for layer in self.head_dims for d in layer))
        )

    def validate(self, teacher_config, n_layers: int) -> None:
        """Refuse plans the teacher cannot supply or a Hugging Face config cannot express."""
        t_hidden, t_ffn = teacher_config.hidden_size, teacher_config.intermediate_size
        t_heads = teacher_config.num_attention_heads
        t_head_size = t_hidden // t_heads
        require(len(self.intermediate) == n_layers and len(self.heads) == n_layers,
                f"The width plan covers {len(self.intermediate)} layers but the student has {n_layers}.")
        _check_indices("hidden", self.hidden, t_hidden)
        _check_indices("head dimension", self.head_dim, t_head_size)
        for i in range(n_layers):
            _check_indices(f"FFN (layer {i})", self.intermediate[i], t_ffn)
            _check_indices(f"head (layer {i})", self.heads[i], t_heads)
        if self.head_dims is not None:
            require(len(self.head_dims) == n_layers and all(len(self.head_dims[i]) == len(self.heads[i])
                                                            for i in range(n_layers)),
                    "The width plan's per-head dimensions must list one set per kept head of every layer.")
            for i, layer_dims in enumerate(self.head_dims):
                for dims in layer_dims:
                    _check_indices(f"head dimension (layer {i})", dims, t_head_size)
                    require(len(dims) == len(self.head_dim), "Every head must keep the same number of dimensions.")
        require(len({len(s) for s in self.intermediate}) == 1 and len({len(s) for s in self.heads}) == 1,
                "Every student layer must keep the same number of FFN units and heads (one config size).")
        require(self.num_heads * self.head_size == self.hidden_size,
                f"{self.num_heads} heads of size {self.head_size} do not make the hidden size "
                f"{self.hidden_size}; the architectures supported need heads × head size = hidden size.")

    def to_dict(self, with_indices: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_heads": self.num_heads,
            "head_size": self.head_size,
        }
        if with_indices:
            out["indices"] = {"hidden": self.hidden, "intermediate": self.intermediate, "heads": self.heads,
                              "head_dim": self.head_dim}
            if self.head_dims is not None:
                out["indices"]["head_dims"] = self.head_dims
        out.update(self.details)
        return out


def _check_indices(what: str, indices: list[int], n: int) -> None:
    require(len(indices) >= 1, f"The width plan keeps no {what} elements; keep at least one.")
    require(all(0 <= i < n for i in indices), f"The width plan's {what} indices fall outside 0..{n - 1}.")
    require(len(set(indices)) == len(indices), f"The width plan's {what} indices repeat an element.")


def target_sizes(config, hidden: int | None, intermediate: int | None, heads: int | None) -> tuple[int, int, int, int]:
    """Check the requested student sizes against the teacher; return (hidden, ffn, heads, head size)."""
    t_hidden, t_ffn, t_heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    t_head_size = t_hidden // t_heads
    hidden = t_hidden if hidden is None else int(hidden)
    intermediate = t_ffn if intermediate is None else int(intermediate)
    heads = t_heads if heads is None else int(heads)
    require(1 <= hidden <= t_hidden,
            f"--hidden {hidden} is not between 1 and the teacher's hidden size {t_hidden}; a student cannot be wider.")
    require(1 <= intermediate <= t_ffn,
            f"--intermediate {intermediate} is not between 1 and the teacher's FFN size {t_ffn}; "
            "a student cannot be wider.")
    require(1 <= heads <= t_heads,
            f"--heads {heads} is not between 1 and the teacher's {t_heads} attention heads.")
    require(hidden % heads == 0,
            f"The hidden size {hidden} is not divisible by the number of heads {heads}; pick a hidden size "
            f"that is a multiple of {heads} (or change --heads).")
    head_size = hidden // heads
    require(head_size <= t_head_size,
            f"{heads} heads of a {hidden}-wide student would be {head_size} wide, wider than the teacher's "
            f"{t_head_size}; reduce --hidden to at most {heads * t_head_size} or keep more heads.")
    return hidden, intermediate, heads, head_size


def uniform_plan(config, hidden: int | None = None, intermediate: int | None = None, heads: int | None = None,
                 n_layers: int | None = None) -> WidthPlan:
    """Evenly spaced selection in every dimension, the same sets in every layer."""
    n_layers = config.num_hidden_layers if n_layers is None else n_layers
    hidden, intermediate, heads, head_size = target_sizes(config, hidden, intermediate, heads)
    t_heads = config.num_attention_heads
    head_set = evenly_spaced(t_heads, heads)
    ffn_set = evenly_spaced(config.intermediate_size, intermediate)
    return WidthPlan(
        hidden=evenly_spaced(config.hidden_size, hidden),
        intermediate=[list(ffn_set) for _ in range(n_layers)],
        heads=[list(head_set) for _ in range(n_layers)],
        head_dim=evenly_spaced(config.hidden_size // t_heads, head_size),
        method="uniform",
    )
