"""Loading Hugging Face models and tokenizers with one-sentence errors.

Every stage loads teachers, students and tokenizers through these helpers so that a missing or
corrupt directory, an unreachable hub id or an unknown head is reported the same way everywhere.
:func:`resolve_model_dir` is the one place a model argument becomes a directory: a local model
directory, or a hub id's snapshot in the Hugging Face cache (offline from the cache with
HF_HUB_OFFLINE=1). Safetensors only; ``trust_remote_code`` stays off unless the caller asks for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

from polydistill.architectures import TASKS, Task, task_of
from polydistill.errors import PolydistillError


@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' loading report for a load whose missing / unexpected weights are
    expected (a new task head, a head-less MLM teacher); real errors still raise."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _describe(source: str) -> str:
    return f"directory {source}" if Path(source).exists() else f"hub id {source!r}"


# Any one of these makes a directory hold a tokenizer (tokenizer.json alone is enough; the others are
# the slow tokenizers' vocabularies, read with tokenizer_config.json).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt",
                   "sentencepiece.bpe.model", "spm.model", "spiece.model", "tokenizer.model")


# What a hub model directory needs (config, safetensors weights, tokenizer, sentence-transformers modules,
# model card); never the other frameworks' weights (pytorch_model.bin, tf_model.h5, onnx/, openvino/).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "README.md"]
_RESOLVED: dict[tuple[str, str, bool], Path] = {}


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def is_hub_id(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a Hugging Face Hub model rather than a local directory: it does not exist
    here, is not spelled as a path (``./``, ``~``, absolute, more than one ``/``) and is a valid repo id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    text = str(source)
    path = Path(text).expanduser()
    if path.exists() or path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def resolve_model_dir(source: str | os.PathLike) -> Path:
    """The local directory of the model ``source`` names: a model directory as given, or a hub id's
    snapshot in the Hugging Face cache, downloaded when online (config, safetensors, tokenizer,
    sentence-transformers modules, card) and read from the cache alone when HF_HUB_OFFLINE is set.
    The directory holds a readable config.json; anything else is one sentence."""
    text = str(source)
    if not is_hub_id(text):
        path = Path(text).expanduser()
        if not path.exists():
            raise PolydistillError(f"Model directory {text} does not exist; pass a model directory or a hub id.")
        if not (path / "config.json").is_file():
            raise PolydistillError(
                f"{text} is not a Hugging Face model directory (no config.json); pass the directory "
                "that save_pretrained wrote."
            )
        _check_config_file(path / "config.json")
        return path
    from huggingface_hub import constants

    key = (text, str(constants.HF_HUB_CACHE), _hub_offline())
    if key not in _RESOLVED:
        path = _snapshot(text)
        if not (path / "config.json").is_file():
            raise PolydistillError(f"The hub model {text!r} has no config.json; it is not a transformers model "
                                   "(pass a model directory or another hub id).")
        _check_config_file(path / "config.json")
        _RESOLVED[key] = path
    return _RESOLVED[key]


def _snapshot(hub_id: str) -> Path:
    """``hub_id``'s snapshot directory (see :func:`resolve_model_dir`)."""
    from huggingface_hub import constants, snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    offline = _hub_offline()
    host = constants.ENDPOINT.split("://")[-1].split("/")[0]
    if not offline and not isinstance(try_to_load_from_cache(hub_id, "config.json"), str):
        _check_hub_reachable(hub_id, host)  # fail fast, not after ~30 s of retries
    try:
        return Path(snapshot_download(hub_id, allow_patterns=HUB_PATTERNS, local_files_only=offline))
    except IncompleteSnapshotError as err:  # cached under other patterns: what is there may be enough
        if err.snapshot_path and (Path(err.snapshot_path) / "config.json").is_file():
            return Path(err.snapshot_path)
        raise PolydistillError(f"The cached copy of {hub_id!r} is incomplete and the hub cannot complete it; "
                               "download it again online (hf download) or pass a model directory.") from None
    except LocalEntryNotFoundError:
        if offline:
            raise PolydistillError(
                f"{hub_id!r} is neither a local directory nor a model in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}) and the hub is off (HF_HUB_OFFLINE); pass a model directory, or "
                f"download it once online (hf download {hub_id})."
            ) from None
        raise PolydistillError(f"{hub_id!r} is neither a local directory nor in the Hugging Face cache, and {host} "
                               "could not be reached (offline?); pass a model directory.") from None
    except GatedRepoError:
        raise PolydistillError(f"{hub_id!r} is a gated model on the hub: accept its terms on {host} and log in "
                               "(hf auth login), or pass a model directory.") from None
    except RepositoryNotFoundError:
        raise PolydistillError(f"{hub_id!r} is neither a local directory nor a model on the Hugging Face hub (or it "
                               "is private: hf auth login); check the path or hub id.") from None
    except (HfHubHTTPError, OSError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PolydistillError(f"Could not download {hub_id!r} from {host} ({first}); retry, or pass a model "
                               "directory.") from None


def _check_source(source: str | os.PathLike) -> str:
    """``source`` as the string to hand to transformers, after :func:`resolve_model_dir` checked it (a local
    directory exists and holds a readable config.json; a hub id is in the cache or was just downloaded), so
    that a typo is not mistaken for a hub id and a corrupt config is reported as such."""
    path = resolve_model_dir(source)
    text = str(source)
    if is_hub_id(text):
        return text  # transformers finds the resolved snapshot in the cache (and names the model by its id)
    return str(path) if text.startswith("~") else text  # transformers does not expand ~


def _check_hub_reachable(hub_id: str, host: str) -> None:
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise PolydistillError(f"{hub_id!r} is not a local directory, not in the Hugging Face cache, and {host} "
                               "cannot be reached (offline?); pass a model directory.") from None


def _check_config_file(config_file: Path) -> None:
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise PolydistillError(f"The model config {config_file} is not UTF-8 text ({err.reason}); the directory is "
                               "corrupt: restore its config.json or re-create the model.") from None
    except json.JSONDecodeError as err:
        raise PolydistillError(f"The model config {config_file} is not valid JSON ({err.msg} at line {err.lineno}); "
                               "the directory is corrupt: restore its config.json or re-create the model.") from None
    if not isinstance(data, dict):
        raise PolydistillError(f"The model config {config_file} is not a JSON object; the directory is corrupt: "
                               "restore its config.json or re-create the model.")


def load_config(source: str | os.PathLike, trust_remote_code: bool = False):
    from transformers import AutoConfig

    source = _check_source(source)
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise PolydistillError(
            f"Could not load a model config from {_describe(source)}: it is missing, unreachable "
            "(offline?) or corrupt; check the path or hub id."
        ) from err
    except ValueError as err:
        raise PolydistillError(f"The config of {_describe(source)} is not usable: {err}") from err


def auto_class(task: Task):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

    return {
        "sequence": AutoModelForSequenceClassification,
        "token": AutoModelForTokenClassification,
        "base": AutoModel,
    }[task]


def load_model(source: str | os.PathLike, task: Task | None = None, trust_remote_code: bool = False, **kwargs):
    """Load a model with the head its config names (or ``task``), from safetensors only."""
    from safetensors import SafetensorError

    config = kwargs.pop("config", None) or load_config(source, trust_remote_code)
    task = task or task_of(config)
    if task not in TASKS:
        raise PolydistillError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    source = _check_source(source)
    try:
        # transformers' loading report is silenced (a new task head is expected); what matters is checked here
        with quiet_loading():
            model, info = auto_class(task).from_pretrained(
                source, config=config, use_safetensors=True, trust_remote_code=trust_remote_code,
                output_loading_info=True, **kwargs
            )
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PolydistillError(
            f"Could not load the weights of {_describe(source)} ({detail[:200]}); the checkpoint may be "
            "corrupt, not safetensors, or of another architecture."
        ) from err
    _check_body_loaded(model, info, source)
    check_finite_weights(model, source)
    return model


def check_finite_weights(model, source: str | os.PathLike) -> None:
    """Refuse weights holding NaN or infinity (a diverged run's save, a corrupt edit): they would be
    evaluated, exported or distilled into garbage without a word. One sum per tensor (~0.05 s per 100M
    values); only a non-finite sum is confirmed element-wise (a large sum can overflow in half precision)."""
    import torch

    for name, param in model.named_parameters():
        if not param.is_floating_point() or param.device.type == "meta" or param.numel() == 0:
            continue
        with torch.no_grad():
            if bool(torch.isfinite(param.sum())):
                continue
            bad = int((~torch.isfinite(param)).sum())
        if bad:
            raise PolydistillError(
                f"The weights of {_describe(str(source))} hold NaN or infinite values ({bad} in {name}, the first "
                "bad tensor); the checkpoint is corrupt or from a diverged run: restore it or train it again."
            )


def _check_body_loaded(model, info: dict, source: str) -> None:
    """Missing weights are expected only in a new task head; missing encoder weights mean a broken
    or foreign checkpoint, which would otherwise train from random weights without a word."""
    prefix = getattr(model, "base_model_prefix", "")
    # a pooler is not encoder body: an MLM checkpoint (lm-distill's output) has none, and a classifier
    # trains its fresh one with the head (docs/lang.md: lm-distill, then finetune)
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k and "pooler" not in k.split(".")]
    body = [k for k in missing if prefix and k.startswith(prefix + ".")] if task_of(model) != "base" else missing
    if body:
        raise PolydistillError(
            f"The checkpoint {_describe(source)} lacks {len(body)} encoder weight(s) (e.g. {body[0]}); it is "
            "incomplete or of another architecture."
        )


def load_tokenizer(source: str | os.PathLike, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    directory = resolve_model_dir(source)
    source = _check_source(source)
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        # transformers would build a tokenizer of the special tokens alone and carry on
        raise PolydistillError(
            f"{source} has no tokenizer files (expected tokenizer.json, or tokenizer_config.json with its "
            "vocabulary: vocab.txt, vocab.json + merges.txt or a SentencePiece model such as "
            "sentencepiece.bpe.model); save the tokenizer into the model directory (tokenizer.save_pretrained)."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as err:
        raise PolydistillError(
            f"Could not load a tokenizer from {_describe(source)}; the directory needs the tokenizer "
            "files saved with the model (tokenizer.json or its vocabulary)."
        ) from err
    _check_tokenizer_fits(tokenizer, directory, source)
    return tokenizer


def _check_tokenizer_fits(tokenizer, directory: Path, source: str) -> None:
    """Refuse a tokenizer that is certainly another model's, by comparing it with the model's word-embedding
    rows (config.json's vocab_size, which the weights' shape must match):

    - more ids than rows, or a special token (pad, cls, mask ...) whose id is past the last row: its ids
      would index past the embedding table (an index error) or score garbage;
    - fewer than half as many ids as rows: models pad their embedding table by a few rows at most (DeBERTa-v3
      128,001 ids / 128,100 rows), and polydistill's vocabulary reduction shrinks the rows with the tokenizer;
      a 300-id tokenizer on a 250k-row model maps its ids onto unrelated rows and is scored as garbage.

    Not detectable here: a foreign tokenizer of about the model's size (another 30k WordPiece vocabulary on a
    30k-row BERT): its ids are in range and merely mean other strings."""
    try:
        rows = json.loads((directory / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return  # resolve_model_dir checked the config; a model without one has nothing to compare
    if not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0:
        return
    size = len(tokenizer)
    fix = "it is another model's tokenizer; save the model's own tokenizer into the directory."
    if size > rows:
        raise PolydistillError(
            f"The tokenizer in {source} has {size} ids but the model has only {rows} word-embedding rows "
            f"(config.json vocab_size): {fix}"
        )
    special = {name: getattr(tokenizer, f"{name}_token_id", None)
               for name in ("pad", "unk", "cls", "sep", "mask", "bos", "eos")}
    past = {name: i for name, i in special.items() if isinstance(i, int) and not 0 <= i < rows}
    if past:
        name, index = next(iter(past.items()))
        raise PolydistillError(
            f"The tokenizer in {source} gives its {name} token the id {index}, past the model's {rows} "
            f"word-embedding rows (config.json vocab_size): {fix}"
        )
    if 2 * size < rows:
        raise PolydistillError(
            f"The tokenizer in {source} has only {size} ids for the model's {rows} word-embedding rows "
            f"(config.json vocab_size; a model pads its table by a few rows at most): {fix}"
        )


def vocabularies_match(tokenizer_a, tokenizer_b) -> bool:
    """True when both tokenizers map the same strings to the same ids."""
    return tokenizer_a.get_vocab() == tokenizer_b.get_vocab()
