"""VocabReduce, tokenizer side: read a fast tokenizer's ``tokenizer.json`` and rebuild it with only the
kept pieces (WordPiece vocab dict re-numbered, Unigram piece list filtered with its scores, BPE vocab and
merges filtered; added tokens and post-processor special ids remapped), ids contiguous in their old order.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from polydistill.errors import PolydistillError, require

if TYPE_CHECKING:
    from polydistill.vocab.plan import VocabPlan

# Files describing the old vocabulary that would contradict the rebuilt tokenizer.json.
STALE_TOKENIZER_FILES = ("vocab.txt", "sentencepiece.bpe.model", "spm.model", "tokenizer.model", "vocab.json",
                         "merges.txt", "added_tokens.json")
BYTE_LEVEL_ALPHABET_SIZE = 256

# What a word outside the kept vocabulary becomes, per tokenizer family (recorded in the provenance).
FALLBACK_DOC = {
    "Unigram": "words with removed pieces are re-segmented (Viterbi) into kept pieces down to the corpus' single "
               "characters; other characters become <unk>",
    "WordPiece": "words with removed pieces are split greedily into kept pieces down to the corpus' characters "
                 "(c and ##c); a word containing an unseen character becomes a single [UNK]",
    "BPE": "merges whose tokens were removed are dropped, so words fall back to shorter kept tokens down to "
           "the (byte-level) alphabet",
}


def backend_json(tokenizer) -> dict:
    """The tokenizer's ``tokenizer.json`` as a dict (fast tokenizers only)."""
    require(
        getattr(tokenizer, "is_fast", False) and hasattr(tokenizer, "backend_tokenizer"),
        "VocabReduce needs a fast tokenizer (tokenizer.json); save the model with a fast tokenizer first.",
    )
    return json.loads(tokenizer.backend_tokenizer.to_str())


def model_vocab(model_json: dict) -> list[str]:
    """Model-vocabulary pieces indexed by id."""
    kind = model_json["type"]
    if kind == "Unigram":
        return [piece for piece, _ in model_json["vocab"]]
    if kind in ("WordPiece", "BPE"):
        by_id = sorted(model_json["vocab"].items(), key=lambda item: item[1])
        require([idx for _, idx in by_id] == list(range(len(by_id))),
                f"The {kind} vocabulary has non-contiguous ids; it cannot be reduced safely.")
        return [piece for piece, _ in by_id]
    raise PolydistillError(
        f"VocabReduce supports WordPiece, Unigram (SentencePiece) and BPE tokenizers, not {kind}."
    )


def merge_pairs(model_json: dict) -> list[tuple[str, str]]:
    """The BPE merges as pairs; tokenizer.json writes each as "a b" (older) or ["a", "b"]."""
    pairs = []
    for merge in model_json.get("merges", []):
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        pairs.append((a, b))
    return pairs


def is_byte_level(backend: dict) -> bool:
    """Whether the pre-tokenizer maps text to bytes (GPT-2 / RoBERTa byte-level BPE)."""
    def visit(node) -> bool:
        if not isinstance(node, dict):
            return False
        if node.get("type") == "ByteLevel":
            return True
        return any(visit(n) for n in node.get("pretokenizers", []) + node.get("processors", []))

    return visit(backend.get("pre_tokenizer"))


def _remap_post_processor(node, old_to_new: dict[int, int]):
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "TemplateProcessing":
        for spec in node.get("special_tokens", {}).values():
            spec["ids"] = [old_to_new[i] for i in spec["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, idx = node[key]
            node[key] = [token, old_to_new[idx]]
    elif kind == "Sequence":
        node["processors"] = [_remap_post_processor(p, old_to_new) for p in node.get("processors", [])]
    return node


def reduce_tokenizer_json(backend: dict, plan: VocabPlan) -> dict:
    """The tokenizer.json with only the kept pieces, re-numbered contiguously."""
    backend = json.loads(json.dumps(backend))  # deep copy
    old_to_new = plan.old_to_new
    model_json = backend["model"]
    kind = model_json["type"]
    pieces = model_vocab(model_json)
    kept_model = [i for i in plan.kept_ids if i < len(pieces)]
    if kind == "Unigram":
        model_json["vocab"] = [model_json["vocab"][i] for i in kept_model]
        if model_json.get("unk_id") is not None:
            model_json["unk_id"] = old_to_new[model_json["unk_id"]]
    elif kind == "WordPiece":
        model_json["vocab"] = {pieces[i]: old_to_new[i] for i in kept_model}
    elif kind == "BPE":
        model_json["vocab"] = {pieces[i]: old_to_new[i] for i in kept_model}
        kept_pieces = set(model_json["vocab"])
        merges = model_json.get("merges", [])
        model_json["merges"] = [
            m for m, (a, b) in zip(merges, merge_pairs(model_json), strict=True)
            if a in kept_pieces and b in kept_pieces and a + b in kept_pieces
        ]
    for token in backend.get("added_tokens", []):
        token["id"] = old_to_new[token["id"]]
    backend["post_processor"] = _remap_post_processor(backend.get("post_processor"), old_to_new)
    return backend


def backend_from_json(backend: dict):
    """A ``tokenizers.Tokenizer`` from a tokenizer.json dict (for measuring, without a model directory)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json.dumps(backend))


def save_tokenizer(tokenizer, backend: dict, out: Path):
    """Save ``tokenizer``'s config files with ``backend`` as its tokenizer.json; return it loaded back."""
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(out)
    for name in STALE_TOKENIZER_FILES:
        (out / name).unlink(missing_ok=True)
    backend_from_json(backend).save(str(out / "tokenizer.json"))
    return AutoTokenizer.from_pretrained(out)


def build_reduced_tokenizer(tokenizer, plan: VocabPlan):
    """The reduced tokenizer as a loaded HF fast tokenizer (written to and read back from a temp dir)."""
    backend = reduce_tokenizer_json(backend_json(tokenizer), plan)
    with tempfile.TemporaryDirectory() as tmp:
        return save_tokenizer(tokenizer, backend, Path(tmp))


__all__ = ["FALLBACK_DOC", "STALE_TOKENIZER_FILES", "backend_from_json", "backend_json", "build_reduced_tokenizer",
           "is_byte_level", "merge_pairs", "model_vocab", "reduce_tokenizer_json", "save_tokenizer"]
