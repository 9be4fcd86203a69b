"""MLM masking as in DistilBERT / Eliquare (Singh et al. 2023, §4): 15 % of tokens, 80/10/10, frequency-smoothed.

Which tokens get predicted: exactly ``ceil(p · n)`` of the batch's ``n`` maskable tokens (not padding,
not special tokens), drawn without replacement with probability ∝ ``count(token) ** -smoothing``, so rare
sub-words are chosen more often than under uniform masking (smoothing 0 = uniform; counts come from the
training corpus, unseen tokens count as 1). Each chosen token is then replaced by the mask token (80 %),
kept (10 %) or replaced by a random non-special token (10 %); its label is the original id, every other
label is -100.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from polydistill.data.types import IGNORE_INDEX
from polydistill.errors import require

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def token_counts(id_lists: Iterable[list[int]], vocab_size: int) -> torch.Tensor:
    """How often each token id occurs in the corpus (for frequency-smoothed masking)."""
    counts = torch.zeros(vocab_size, dtype=torch.long)
    for ids in id_lists:
        if len(ids):
            counts += torch.bincount(torch.as_tensor(ids, dtype=torch.long), minlength=vocab_size)[:vocab_size]
    return counts


def masking_weights(counts: torch.Tensor, smoothing: float = 0.7, special_ids: Iterable[int] = ()) -> torch.Tensor:
    """Per-token selection weights ``max(count, 1) ** -smoothing``; special tokens get 0."""
    require(smoothing >= 0, f"The MLM smoothing exponent must be ≥ 0, not {smoothing}.")
    weights = counts.clamp(min=1).double().pow(-smoothing)
    special = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
    if len(special):
        weights[special[special < len(weights)]] = 0.0
    return weights


@dataclass
class SmoothedMLMCollator:
    """Pads a list of ``{"input_ids": [...]}`` features and masks them for MLM distillation."""

    tokenizer: PreTrainedTokenizerBase
    weights: torch.Tensor | None = None  # masking_weights(...); None = uniform
    mlm_probability: float = 0.15
    mask_keep_random: tuple[float, float, float] = (0.8, 0.1, 0.1)
    generator: torch.Generator | None = None
    _special: torch.Tensor = field(init=False, repr=False)
    _random_pool: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        require(0 < self.mlm_probability <= 1, f"--mlm-probability must be in (0, 1], not {self.mlm_probability}.")
        require(abs(sum(self.mask_keep_random) - 1) < 1e-6 and min(self.mask_keep_random) >= 0,
                "The mask/keep/random proportions must be non-negative and sum to 1.")
        require(self.tokenizer.mask_token_id is not None,
                "The tokenizer has no mask token, which MLM distillation needs.")
        self._special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)
        vocab_size = len(self.tokenizer)
        pool = torch.ones(vocab_size, dtype=torch.bool)
        pool[self._special[self._special < vocab_size]] = False
        self._random_pool = pool.nonzero().flatten()

    @contextlib.contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """Deterministic masks inside the block (used for validation, so its loss is comparable)."""
        previous = self.generator
        self.generator = torch.Generator().manual_seed(seed)
        try:
            yield
        finally:
            self.generator = previous

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in features]
        batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
        input_ids, attention = batch["input_ids"], batch["attention_mask"]
        maskable = attention.bool() & ~torch.isin(input_ids, self._special)
        pred_mask = self.select(input_ids, maskable)
        labels = torch.where(pred_mask, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        masked = input_ids.clone()
        chosen = input_ids[pred_mask]
        action = torch.multinomial(torch.tensor(self.mask_keep_random), len(chosen), replacement=True,
                                   generator=self.generator) if len(chosen) else chosen
        random_ids = self._random_pool[torch.randint(len(self._random_pool), (len(chosen),), generator=self.generator)]
        replaced = torch.where(action == 0, torch.full_like(chosen, self.tokenizer.mask_token_id),
                               torch.where(action == 1, chosen, random_ids))
        masked[pred_mask] = replaced
        return {"input_ids": masked, "attention_mask": attention, "labels": labels}

    def select(self, input_ids: torch.Tensor, maskable: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the tokens to predict: ceil(p·n) of the maskable ones, frequency-smoothed."""
        n = int(maskable.sum())
        pred = torch.zeros_like(maskable)
        if n == 0:
            return pred
        k = math.ceil(self.mlm_probability * n)
        if self.weights is None:
            probs = maskable.double().flatten()
        else:
            probs = self.weights[input_ids.flatten().clamp(max=len(self.weights) - 1)] * maskable.flatten()
            if probs.sum() <= 0:  # every maskable token has weight 0: fall back to uniform
                probs = maskable.double().flatten()
        k = min(k, int((probs > 0).sum()))
        picked = torch.multinomial(probs / probs.sum(), k, replacement=False, generator=self.generator)
        pred.view(-1)[picked] = True
        return pred
