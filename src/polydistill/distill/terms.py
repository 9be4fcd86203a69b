"""The KD objective as a registry of terms: the one extension point for new KD losses.

A term is a function ``(batch: TermInputs, kd: KDSettings) -> Tensor`` registered by name with what
it needs from the models. The trainer captures the union of the active terms' needs (nothing for a
term whose weight is 0), runs the teacher only when a term needs it, and sums ``weight · term``.

Needs:
- ``teacher_logits``: the teacher's logits (``batch.teacher_logits``);
- ``hidden``: outputs of the mapped layers, student layer i ↔ teacher layer ``layer_map[i]``
  (``batch.student_hidden`` / ``batch.teacher_hidden``, lists);
- ``embeddings``: hidden_states[0] of both models;
- ``attention``: attention maps of the mapped layers (probabilities or scores, ``kd.attention``);
- ``last_hidden``: the last layer's output of both models;
- ``qkv``: the query, key and value projections' outputs of the student's last layer and of the
  teacher's relation layer (``kd.relation_layer``; default its last).
Every term also gets the student's logits, the gold labels, the token mask (real tokens) and the
prediction mask (the positions a prediction-level loss scores: labelled tokens for NER, every
token for MLM, None for sequence classification). When the widths differ, the student's hidden
states and embeddings arrive already mapped to the teacher's width by the trainable projection W
(applied inside the student's forward, so distributed training synchronises it).

Adding a term (outside the package too)::

    from polydistill.distill.terms import register_term

    @register_term("logit_l1", needs={"teacher_logits"})
    def logit_l1(batch, kd):
        return (batch.student_logits - batch.teacher_logits).abs().mean()

    KDSettings(logit_l1=0.5)   # or --kd-term logit_l1=0.5 on the command line
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, TypeVar

from torch import Tensor

from polydistill.distill import losses
from polydistill.errors import PolydistillError

if TYPE_CHECKING:
    from polydistill.distill.settings import KDSettings

NEEDS = frozenset({"teacher_logits", "hidden", "embeddings", "attention", "last_hidden", "qkv"})
TEACHER_NEEDS = NEEDS  # every need but the student's own outputs involves the teacher


@dataclass
class TermInputs:
    """What the active terms need from one batch; fields a term did not ask for stay None."""

    student_logits: Tensor
    labels: Tensor
    token_mask: Tensor  # (B, L), 1 at real tokens
    prediction_mask: Tensor | None  # (B, L) positions scored by prediction-level terms; None: per example
    teacher_logits: Tensor | None = None
    student_hidden: list[Tensor] | None = None
    teacher_hidden: list[Tensor] | None = None
    student_embeddings: Tensor | None = None
    teacher_embeddings: Tensor | None = None
    student_maps: list[Tensor] | None = None
    teacher_maps: list[Tensor] | None = None
    student_last: Tensor | None = None
    teacher_last: Tensor | None = None
    student_qkv: list[Tensor] | None = None  # [Q, K, V] outputs, (B, L, D) each
    teacher_qkv: list[Tensor] | None = None
    relation_heads: int | None = None  # resolved from kd.relation_heads (default: the teacher's head count)


TermFn = Callable[[TermInputs, "KDSettings"], Tensor]
T = TypeVar("T")


def given(value: T | None, field: str) -> T:
    """``value``, a :class:`TermInputs` field a term needs; None means the term did not declare that need."""
    if value is None:
        raise ValueError(f"TermInputs.{field} is None: declare the need that fills it in the term's register_term")
    return value


@dataclass(frozen=True)
class KDTerm:
    name: str
    compute: TermFn
    needs: frozenset[str]
    description: str

    @property
    def needs_teacher(self) -> bool:
        return bool(self.needs & TEACHER_NEEDS)


_REGISTRY: dict[str, KDTerm] = {}


def register_term(name: str, *, needs: Iterable[str] = (), description: str = "", replace: bool = False):
    """Decorator: register ``fn(batch, kd) -> Tensor`` as the KD term ``name``."""
    needs = frozenset(needs)
    unknown = needs - NEEDS
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)} for KD term {name!r}; choose from {sorted(NEEDS)}")
    if not name.isidentifier():
        raise ValueError(f"a KD term name must be an identifier, not {name!r}")

    def decorator(fn: TermFn) -> TermFn:
        if name in _REGISTRY and not replace:
            raise ValueError(f"a KD term named {name!r} is already registered; pass replace=True to replace it")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = KDTerm(name, fn, needs, doc)
        return fn

    return decorator


PLUGIN_GROUP = "polydistill.kd_terms"


def load_plugins() -> list[str]:
    """Import the modules of installed packages that declare KD terms under the entry-point group
    ``polydistill.kd_terms`` (their import registers the terms); returns the names loaded."""
    loaded = []
    for entry in entry_points(group=PLUGIN_GROUP):
        entry.load()
        loaded.append(entry.name)
    return loaded


def get_term(name: str) -> KDTerm:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PolydistillError(f"Unknown KD term {name!r}; registered terms: {', '.join(_REGISTRY)}.") from None


def term_names() -> list[str]:
    return list(_REGISTRY)


# ------------------------------------------------------------------------------ the built-in terms


@register_term("att", needs={"attention"})
def _attention(batch: TermInputs, kd: KDSettings) -> Tensor:
    """TinyBERT L_att: MSE of the mapped layers' attention maps (Wibowo et al. 2024, eq. 1)."""
    return losses.attention_loss(given(batch.student_maps, "student_maps"), given(batch.teacher_maps, "teacher_maps"),
                                 batch.token_mask)


@register_term("hid", needs={"hidden"})
def _hidden(batch: TermInputs, kd: KDSettings) -> Tensor:
    """TinyBERT L_hid: MSE of the mapped layers' outputs (student through W when widths differ; eq. 2)."""
    return losses.hidden_loss(given(batch.student_hidden, "student_hidden"),
                              given(batch.teacher_hidden, "teacher_hidden"), batch.token_mask)


@register_term("emb", needs={"embeddings"})
def _embeddings(batch: TermInputs, kd: KDSettings) -> Tensor:
    """TinyBERT L_embd: MSE of the embedding outputs (student through W when widths differ; eq. 3)."""
    return losses.embedding_loss(given(batch.student_embeddings, "student_embeddings"),
                                 given(batch.teacher_embeddings, "teacher_embeddings"), batch.token_mask)


@register_term("pred", needs={"teacher_logits"})
def _prediction(batch: TermInputs, kd: KDSettings) -> Tensor:
    """L_pred: logit MSE (the paper) or KL at temperature T ×T² (Hinton; DistilBERT's L_ce) (eq. 4)."""
    return losses.prediction_loss(batch.student_logits, given(batch.teacher_logits, "teacher_logits"), kd.pred_loss,
                                  kd.temperature, batch.prediction_mask)


@register_term("ce")
def _cross_entropy(batch: TermInputs, kd: KDSettings) -> Tensor:
    """Cross-entropy with the gold labels (for MLM: the masked tokens, DistilBERT's L_mlm)."""
    return losses.classification_loss(batch.student_logits, batch.labels)


@register_term("cos", needs={"last_hidden"})
def _cosine(batch: TermInputs, kd: KDSettings) -> Tensor:
    """DistilBERT L_cos: mean 1 − cos between the last hidden states at real tokens."""
    return losses.cosine_loss(given(batch.student_last, "student_last"), given(batch.teacher_last, "teacher_last"),
                              batch.token_mask)


@register_term("rel", needs={"qkv"})
def _relations(batch: TermInputs, kd: KDSettings) -> Tensor:
    """MiniLMv2 relation KD: KL of Q-Q, K-K, V-V self-attention relations (any width or head count)."""
    return losses.relation_loss(given(batch.student_qkv, "student_qkv"), given(batch.teacher_qkv, "teacher_qkv"),
                                batch.token_mask, given(batch.relation_heads, "relation_heads"))


@register_term("last_mse", needs={"last_hidden"})
def _last_mse(batch: TermInputs, kd: KDSettings) -> Tensor:
    """MSE between the last hidden states at real tokens (an optional extra of lm-distill)."""
    return losses.masked_mse(given(batch.student_last, "student_last"), given(batch.teacher_last, "teacher_last"),
                             batch.token_mask)
