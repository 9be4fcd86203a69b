"""TinyBERT-style KD losses (Wibowo et al. 2024, §2.1, eqs. 1–4) as pure functions of tensors.

Also DistilBERT's cosine term (Singh et al. 2023 / lm-distill). Every term is computed in float32, whatever
the precision of the captured tensors (bf16/fp16 under autocast), so sums over many elements stay
exact. Every MSE excludes padding: a hidden state counts only at real tokens, an attention map only at
(real query, real key) pairs, and for token classification a logit only at labelled (first
sub-word) positions. Means are over the counted elements, so averaging "over heads and layers"
(eq. 1) is exact: all heads and layers share the same mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polydistill.data.types import IGNORE_INDEX


def masked_mse(student: Tensor, teacher: Tensor, token_mask: Tensor) -> Tensor:
    """Mean squared error over the feature values of real tokens.

    student, teacher: (B, L, D); token_mask: (B, L), 1 at real tokens.
    """
    mask = token_mask.float().unsqueeze(-1)
    squared = (student.float() - teacher.float()).pow(2) * mask
    count = mask.sum() * student.shape[-1]
    return squared.sum() / count.clamp_min(1)


def hidden_loss(
    student_states: Sequence[Tensor],
    teacher_states: Sequence[Tensor],
    token_mask: Tensor,
    projection: nn.Module | None = None,
) -> Tensor:
    """L_hid (eq. 2): mean over mapped layers of MSE(W·H_S, H_T); W is identity when ``projection`` is None."""
    if len(student_states) != len(teacher_states) or not student_states:
        raise ValueError("hidden_loss needs one teacher state per student state")
    losses = [
        masked_mse(projection(s) if projection is not None else s, t, token_mask)
        for s, t in zip(student_states, teacher_states, strict=True)
    ]
    return torch.stack(losses).mean()


def embedding_loss(
    student_embeddings: Tensor, teacher_embeddings: Tensor, token_mask: Tensor, projection: nn.Module | None = None
) -> Tensor:
    """L_embd (eq. 3): MSE(W·E_S, E_T) over real tokens."""
    projected = projection(student_embeddings) if projection is not None else student_embeddings
    return masked_mse(projected, teacher_embeddings, token_mask)


def attention_loss(student_maps: Sequence[Tensor], teacher_maps: Sequence[Tensor], token_mask: Tensor) -> Tensor:
    """L_att (eq. 1): MSE of attention maps averaged over heads and mapped layers.

    Maps are (B, H, L, L) (probabilities or pre-softmax scores); only pairs whose query and key are
    both real tokens count, so padded rows and padded keys never contribute.
    """
    if len(student_maps) != len(teacher_maps) or not student_maps:
        raise ValueError("attention_loss needs one teacher map per student map")
    valid = token_mask.float()
    pair_mask = (valid[:, :, None] * valid[:, None, :]).unsqueeze(1)  # (B, 1, L, L)
    losses = []
    for s, t in zip(student_maps, teacher_maps, strict=True):
        if s.shape != t.shape:
            raise ValueError(f"attention maps differ in shape: student {tuple(s.shape)}, teacher {tuple(t.shape)}")
        squared = (s.float() - t.float()).pow(2) * pair_mask
        losses.append(squared.sum() / (pair_mask.sum() * s.shape[1]).clamp_min(1))
    return torch.stack(losses).mean()


def _labelled(logits: Tensor, label_mask: Tensor | None) -> Tensor:
    """(B, C) stays; (B, L, C) keeps only labelled positions → (N, C)."""
    if logits.dim() == 3:
        if label_mask is None:
            raise ValueError("token-level logits need a label mask")
        return logits[label_mask.bool()]
    return logits


def prediction_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    kind: str = "mse",
    temperature: float = 1.0,
    label_mask: Tensor | None = None,
) -> Tensor:
    """L_pred (eq. 4). ``mse``: MSE of logits (the paper's choice); ``kl``: Hinton's
    KL(softmax(z_T/T) ‖ softmax(z_S/T))·T², averaged over examples (or labelled tokens).

    For token classification pass (B, L, C) logits and ``label_mask`` (B, L), true at labelled
    positions; other positions are ignored.
    """
    s = _labelled(student_logits, label_mask).float()
    t = _labelled(teacher_logits, label_mask).float()
    if s.shape[0] == 0:
        return s.sum() * 0.0  # no labelled position in the batch: keep the graph, add nothing
    if kind == "mse":
        return F.mse_loss(s, t)
    if kind == "kl":
        log_p_s = F.log_softmax(s / temperature, dim=-1)
        log_p_t = F.log_softmax(t / temperature, dim=-1)
        return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2
    raise ValueError(f"unknown prediction loss {kind!r}; choose mse or kl")


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy with the gold labels; -100 (unlabelled sub-words, padding) is ignored."""
    if logits.dim() == 3:
        logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    if (labels != IGNORE_INDEX).sum() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


def cosine_loss(student: Tensor, teacher: Tensor, token_mask: Tensor) -> Tensor:
    """DistilBERT's L_cos: mean(1 − cos(h_S, h_T)) over real tokens; student, teacher: (B, L, D)."""
    keep = token_mask.bool()
    return (1 - F.cosine_similarity(student[keep].float(), teacher[keep].float(), dim=-1)).mean()


def self_relations(x: Tensor, num_heads: int, token_mask: Tensor) -> Tensor:
    """MiniLMv2 self-attention relations of one projection output: ``x`` (B, L, D) is re-split into
    ``num_heads`` relation heads of size D/num_heads (whatever the model's own head count), and
    R = softmax(x_h x_hᵀ / sqrt(D/num_heads)) over real keys → log-probabilities (B, heads, L, L)."""
    batch, length, width = x.shape
    if width % num_heads:
        raise ValueError(f"{num_heads} relation heads do not divide the width {width}")
    size = width // num_heads
    heads = x.float().view(batch, length, num_heads, size).transpose(1, 2)
    scores = heads @ heads.transpose(-1, -2) * size**-0.5
    scores = scores.masked_fill(~token_mask.bool()[:, None, None, :], float("-inf"))
    return scores.log_softmax(dim=-1)


def relation_loss(student_qkv: Sequence[Tensor], teacher_qkv: Sequence[Tensor], token_mask: Tensor,
                  num_heads: int) -> Tensor:
    """MiniLMv2 (Wang et al. 2021) self-attention relation distillation: Σ over Q-Q, K-K, V-V of
    KL(R_T ‖ R_S), averaged over relation heads and real query positions (temperature-free). The
    relation heads re-split both models' projections the same way, so widths and head counts may
    differ between teacher and student and no projection is needed."""
    rows = token_mask.bool()[:, None, :].expand(-1, num_heads, -1)  # real query positions
    total = token_mask.new_zeros((), dtype=torch.float32)
    for s, t in zip(student_qkv, teacher_qkv, strict=True):
        log_s, log_t = self_relations(s, num_heads, token_mask), self_relations(t, num_heads, token_mask)
        p_t = log_t.exp()
        kl = torch.where(p_t > 0, p_t * (log_t - log_s), torch.zeros_like(p_t)).sum(-1)  # padded keys: p_t = 0
        total = total + kl[rows].mean()
    return total


def attention_maps_from_qk(
    query: Tensor, key: Tensor, num_heads: int, token_mask: Tensor, kind: str = "probs"
) -> Tensor:
    """Attention maps of one layer recomputed from its Q/K projection outputs.

    query, key: (B, L, H·d) Linear outputs; returns (B, H, L, L): scores = QK^T/sqrt(d) (+ a
    large negative number at padded keys before the softmax, as the model's own mask does) or
    their softmax. This lets the forward pass itself stay on SDPA (no ``output_attentions``).
    """
    batch, length, width = query.shape
    head_dim = width // num_heads
    q = query.view(batch, length, num_heads, head_dim).transpose(1, 2)
    k = key.view(batch, length, num_heads, head_dim).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-1, -2)) * head_dim**-0.5
    if kind == "scores":
        return scores
    pad = ~token_mask.bool()[:, None, None, :]
    scores = scores.masked_fill(pad, torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1)
