"""The teacher-output cache: the frozen teacher's outputs that the active KD terms need, computed once
per (teacher, tokenised training split, capture spec, precision) and reused by every later epoch,
by a resumed run and by other grid cells distilling from the same teacher on the same data.

In eval mode (no dropout) the teacher's output for an example never changes, so a KD step can read
it instead of running the teacher (about 40 % of a KD step). Outputs are stored **per example,
sliced to its real length** (logits; mapped-layer hidden states, embeddings, last hidden states:
``n × D``; attention maps ``H × n × n``), so a cached batch is rebuilt for any batch composition and
padding: positions past an example's length are zero, and every KD term masks them out. Storage is
float16 by default (``teacher_cache_dtype``), in one safetensors file under the cache directory,
written atomically; a cache larger than ``teacher_cache_gb`` is not built (the teacher then runs
live, as without the cache). lm-distill masks its inputs anew each epoch, so it always runs the
teacher live. The cache folder keeps at most ``$POLYDISTILL_TEACHER_CACHE_KEEP_GB`` (default 20 GB):
after a new cache is saved, the least recently used ones go first (a grid of a few hundred cells
otherwise fills a disk: 45 caches took 28 GB on the CPU reproduction).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from polydistill.errors import PolydistillError
from polydistill.io import atomic_output_dir
from polydistill.logs import interactive

EXAMPLE_INDEX = "example_index"  # column of the training split: the row's position, for cache lookups
CACHE_ENV = "POLYDISTILL_TEACHER_CACHE"
KEEP_ENV = "POLYDISTILL_TEACHER_CACHE_KEEP_GB"
DEFAULT_KEEP_GB = 20.0
OUTPUTS_FILE = "outputs.safetensors"
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# fields of PolydistillTrainer._teacher_side, and whether they are per layer (a list)
LIST_FIELDS = ("teacher_hidden", "teacher_maps", "teacher_qkv")
TENSOR_FIELDS = ("teacher_logits", "teacher_embeddings", "teacher_last")


def default_cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "polydistill" / "teacher-outputs")


def keep_bytes() -> int:
    """The cache folder's size budget (bytes), from ``$POLYDISTILL_TEACHER_CACHE_KEEP_GB``."""
    raw = os.environ.get(KEEP_ENV)
    try:
        gb = float(raw) if raw else DEFAULT_KEEP_GB
    except ValueError:
        raise PolydistillError(f"${KEEP_ENV} must be a number of GB, got {raw!r}.") from None
    return int(gb * 1e9)


def prune(root: Path, budget: int, keep: Path) -> list[Path]:
    """Delete the least recently used caches under ``root`` until the folder fits ``budget`` bytes;
    ``keep`` (the cache just saved or read) always stays. Returns the deleted cache folders."""
    entries = []
    for folder in root.iterdir() if root.is_dir() else ():
        if folder.name.startswith("."):  # another process's cache being written (io.atomic_output_dir)
            continue
        file = folder / OUTPUTS_FILE
        if folder.is_dir() and file.is_file():
            stat = file.stat()
            entries.append((stat.st_mtime, stat.st_size, folder))
    total = sum(size for _, size, _ in entries)
    deleted = []
    for _, size, folder in sorted(entries, key=lambda e: e[0]):
        if total <= budget:
            break
        if folder.resolve() == keep.resolve():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
        deleted.append(folder)
    return deleted


def estimate_bytes(lengths: Iterable[int], spec: dict[str, Any], dtype: str) -> int:
    """Bytes the cache of examples of these token ``lengths`` needs for the capture ``spec``."""
    size = torch.tensor([], dtype=_DTYPES[dtype]).element_size()
    per_token = spec["num_labels"] if spec["token_logits"] else 0
    per_token += spec["width"] * (spec["hidden_layers"] + spec["embeddings"] + spec["last_hidden"]
                                  + 3 * spec.get("relation", 0))
    per_pair = spec["heads"] * spec["map_layers"]
    per_example = 0 if spec["token_logits"] else spec["num_labels"]
    total = sum(per_example + n * per_token + n * n * per_pair for n in lengths)
    return int(total * size)


def size_words(n: int) -> str:
    """Bytes in words: 4.8 GB, 312.5 MB, 12.0 kB."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def over_budget(needed: int, budget_gb: float) -> dict[str, Any] | None:
    """The cache's one budget rule: a cache of ``needed`` bytes larger than ``budget_gb`` (``teacher_cache_gb``,
    ``--teacher-cache-gb``) is not built. Returns the record of the skip (run.json ``teacher_cache``: the reason,
    the bytes needed and the budget), or None when the cache fits."""
    if needed <= budget_gb * 1e9:
        return None
    return {"skipped": f"needs {size_words(needed)} > {budget_gb:g} GB budget (--teacher-cache-gb)",
            "bytes": int(needed), "budget_bytes": int(budget_gb * 1e9)}


def describe(record: dict[str, Any] | None) -> str | None:
    """What a KD run did with the cache, in words, from its record (run.json ``teacher_cache``; compress adds
    ``{"off": why}``): ``teacher-output cache: built (1.2 GB in 31 s)`` / ``reused`` / ``skipped — needs 4.8 GB >
    4.0 GB budget (--teacher-cache-gb)`` / ``off — why``. None without a record (the run had no cache plan)."""
    if not record:
        return None
    if "skipped" in record:
        return f"teacher-output cache: skipped — {record['skipped']}"
    if "off" in record:
        return f"teacher-output cache: off — {record['off']}"
    size = f"{size_words(record['bytes'])}" if record.get("bytes") else ""
    if record.get("reused"):
        return "teacher-output cache: reused" + (f" ({size})" if size else "")
    if "reused" in record:
        return "teacher-output cache: built (" + ", ".join(x for x in (size, f"{record.get('seconds', 0):.0f} s") if x) + ")"
    return "teacher-output cache: planned" + (f" ({size})" if size else "")


def cache_key(teacher_digest: str, input_ids: list[list[int]], spec: dict[str, Any], dtype: str,
              precision: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({"teacher": teacher_digest, "spec": spec, "dtype": dtype, "precision": precision,
                              "version": 1}, sort_keys=True).encode())
    for ids in input_ids:
        digest.update(len(ids).to_bytes(4, "little"))
        digest.update(torch.as_tensor(ids, dtype=torch.int64).numpy().tobytes())
    return digest.hexdigest()


class TeacherCache:
    """Per-example teacher outputs, rebuilt into padded batches on demand."""

    def __init__(self, tensors: dict[str, Tensor], lengths: Tensor, layers: dict[str, int], token_logits: bool):
        self.tensors = tensors  # flat per field (and per layer): concatenated per-example slices
        self.lengths = lengths
        self.layers = layers  # number of layers per list field
        self.token_logits = token_logits  # logits per token (NER) rather than per example
        self._offsets = {name: self._starts(name) for name in tensors}

    def _rows(self, name: str) -> Tensor:
        """Rows (first-dimension entries) each example takes in field ``name``."""
        if name.startswith("teacher_maps"):
            return self.lengths * self.lengths
        if name == "teacher_logits" and not self.token_logits:
            return torch.ones_like(self.lengths)
        return self.lengths

    def _starts(self, name: str) -> Tensor:
        rows = self._rows(name)
        return torch.cat([torch.zeros(1, dtype=torch.long), rows.cumsum(0)[:-1]])

    def _one(self, name: str, index: int) -> Tensor:
        start = int(self._offsets[name][index])
        return self.tensors[name][start:start + int(self._rows(name)[index])]

    def batch(self, indices: Tensor, length: int, device, dtype: torch.dtype) -> dict[str, Any]:
        """The teacher outputs of examples ``indices``, padded with zeros to ``length`` tokens."""
        with torch.autocast("cpu", enabled=False):  # plain copies, whatever autocast the step runs under
            return self._batch(indices, length, device, dtype)

    def _batch(self, indices: Tensor, length: int, device, dtype: torch.dtype) -> dict[str, Any]:
        out: dict[str, Any] = {}
        idx = [int(i) for i in indices]
        for name in TENSOR_FIELDS:
            if name not in self.tensors:
                continue
            if name == "teacher_logits" and not self.token_logits:
                out[name] = torch.stack([self._one(name, i)[0] for i in idx])
                continue
            rows = [self._one(name, i) for i in idx]
            padded = rows[0].new_zeros((len(idx), length, *rows[0].shape[1:]))
            for b, row in enumerate(rows):
                padded[b, :len(row)] = row
            out[name] = padded
        for field in LIST_FIELDS:
            if field not in self.layers:
                continue
            per_layer = []
            for layer in range(self.layers[field]):
                name = f"{field}.{layer}"
                if field == "teacher_maps":
                    maps = []
                    for i in idx:
                        n = int(self.lengths[i])
                        flat = self._one(name, i)  # (n·n, H)
                        full = flat.new_zeros((flat.shape[1], length, length))
                        full[:, :n, :n] = flat.reshape(n, n, -1).permute(2, 0, 1)
                        maps.append(full)
                    per_layer.append(torch.stack(maps))
                else:
                    rows = [self._one(name, i) for i in idx]
                    padded = rows[0].new_zeros((len(idx), length, rows[0].shape[1]))
                    for b, row in enumerate(rows):
                        padded[b, :len(row)] = row
                    per_layer.append(padded)
            out[field] = per_layer
        return {k: ([t.to(device=device, dtype=dtype) for t in v] if isinstance(v, list)
                    else v.to(device=device, dtype=dtype)) for k, v in out.items()}

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        with atomic_output_dir(path, overwrite=True, own=True) as tmp:
            save_file({"lengths": self.lengths, **self.tensors}, str(tmp / OUTPUTS_FILE),
                      metadata={"layers": json.dumps(self.layers), "token_logits": json.dumps(self.token_logits)})

    @classmethod
    def load(cls, path: Path) -> TeacherCache | None:
        from safetensors import safe_open

        file = path / OUTPUTS_FILE
        if not file.is_file():
            return None
        with safe_open(str(file), framework="pt") as handle:
            meta = handle.metadata()
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        lengths = tensors.pop("lengths")
        return cls(tensors, lengths, json.loads(meta["layers"]), json.loads(meta["token_logits"]))


def build_cache(teacher_side, dataset, collator, batch_size: int, dtype: str) -> TeacherCache:
    """Run ``teacher_side(features, token_mask)`` (the trainer's live teacher pass) over ``dataset``
    once, in length order, and keep each example's outputs sliced to its length."""
    from tqdm.auto import tqdm

    storage = _DTYPES[dtype]
    lengths = torch.tensor([len(ids) for ids in dataset["input_ids"]], dtype=torch.long)
    order = sorted(range(len(dataset)), key=lambda i: int(lengths[i]))
    parts: dict[str, list[tuple[int, Tensor]]] = {}
    layers: dict[str, int] = {}
    token_logits = False
    for start in tqdm(range(0, len(order), batch_size), desc="caching the teacher's outputs", mininterval=5,
                      disable=not interactive()):
        rows = order[start:start + batch_size]
        batch = collator([dataset[i] for i in rows])
        batch.pop("labels", None)
        batch.pop(EXAMPLE_INDEX, None)
        out = teacher_side(batch, batch["attention_mask"])
        for b, i in enumerate(rows):
            n = int(lengths[i])
            for name, value in out.items():
                if isinstance(value, list):
                    layers[name] = len(value)
                    for layer, tensor in enumerate(value):
                        t = tensor[b]
                        flat = (t[:, :n, :n].permute(1, 2, 0).reshape(n * n, -1) if name == "teacher_maps"
                                else t[:n])
                        parts.setdefault(f"{name}.{layer}", []).append((i, flat.detach().to("cpu", storage)))
                else:
                    t = value[b]
                    token_logits |= name == "teacher_logits" and t.dim() >= 2
                    flat = t[:n] if t.dim() >= 2 else t[None]
                    parts.setdefault(name, []).append((i, flat.detach().to("cpu", storage)))
    with torch.autocast("cpu", enabled=False):  # plain concatenation of stored slices, whatever the run's autocast
        tensors = {name: torch.cat([t for _, t in sorted(items, key=lambda item: item[0])])
                   for name, items in parts.items()}
    return TeacherCache(tensors, lengths, layers, token_logits)


def cached_or_built(path: Path, teacher_side, dataset, collator, batch_size: int, dtype: str,
                    main: bool = True) -> tuple[TeacherCache, dict[str, Any]]:
    """The cache at ``path`` if complete, else built now (and saved by the main process)."""
    start = time.perf_counter()
    cache = TeacherCache.load(path)
    if cache is not None and len(cache.lengths) == len(dataset):
        if main:
            os.utime(path / OUTPUTS_FILE)  # recently used: pruned last
        return cache, {"path": str(path), "reused": True, "seconds": round(time.perf_counter() - start, 1)}
    budget = keep_bytes() if main else None  # a bad setting stops the run before the teacher pass, not after
    cache = build_cache(teacher_side, dataset, collator, batch_size, dtype)
    if budget is not None:  # the main process
        cache.save(path)
        prune(path.parent, budget, keep=path)
    return cache, {"path": str(path), "reused": False, "seconds": round(time.perf_counter() - start, 1),
                   "bytes": sum(t.numel() * t.element_size() for t in cache.tensors.values())}
