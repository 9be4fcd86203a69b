"""Publishing a model directory polydistill wrote to the Hugging Face Hub.

:func:`push_model_dir` uploads the whole directory (weights or ONNX file, config, tokenizer, model
card, ``polydistill.json``) with ``huggingface_hub``: ``HfApi.create_repo`` (``exist_ok``) then
``HfApi.upload_folder``. Every stage that writes a model directory (student, distill, export, ...)
can call it after its atomic write. The token comes from ``token``, else ``$HF_TOKEN`` or the cached
``hf auth login``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from polydistill.errors import PolydistillError
from polydistill.io import CARD_FILE

# Never uploaded: lock files and temporaries of our atomic writers, hidden files.
IGNORE_PATTERNS = [".*", "**/.*", "*.lock", "*.tmp"]


def check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if not repo_id or len(parts) > 2 or not all(parts) or any(" " in p for p in parts):
        raise PolydistillError(f"{repo_id!r} is not a Hub repository id; use NAME or OWNER/NAME.")


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection failures of the HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def push_model_dir(model_dir: str | os.PathLike, repo_id: str, token: str | None = None, *,
                   private: bool | None = None, commit_message: str | None = None) -> str:
    """Create ``repo_id`` (if needed) and upload ``model_dir`` to it; returns the repository URL.

    ``model_dir`` must be a finished model directory: ``config.json`` and the ``README.md`` card."""
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise PolydistillError(f"Model directory {model_dir} does not exist; nothing to push.")
    for name in ("config.json", CARD_FILE):
        if not (folder / name).is_file():
            raise PolydistillError(f"{model_dir} has no {name}; push a directory that polydistill wrote.")
    check_repo_id(repo_id)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, token=token, private=private, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), token=token, repo_type="model",
                          commit_message=commit_message or f"Upload {folder.name} with polydistill",
                          ignore_patterns=IGNORE_PATTERNS)
    except OfflineModeIsEnabled:
        raise PolydistillError(f"Cannot push to {repo_id}: the Hub is in offline mode (HF_HUB_OFFLINE); unset it "
                               "on a machine with network access.") from None
    except LocalTokenNotFoundError:
        raise PolydistillError(f"Cannot push to {repo_id}: no Hub token; run `hf auth login` or set HF_TOKEN.") from None
    except HfHubHTTPError as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PolydistillError(f"The Hub refused the upload to {repo_id} ({first}); check the repo id and that "
                               "your token may write to it.") from None
    except _network_errors() as err:  # no network, DNS, timeouts
        raise PolydistillError(f"Cannot reach the Hub to push {repo_id} ({type(err).__name__}); check the "
                               "network or push later with polydistill.hub.push_model_dir.") from None
    return str(url)
