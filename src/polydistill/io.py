"""Files: atomic writes, the output preflight every writer runs, locks, and the names of the files
in a polydistill model directory.

Results and model directories are written next to their destination and renamed into place, so an
interrupted run never leaves a half-written file or directory behind; a temporary sibling that a
kill left behind is removed by the next run that takes the output's lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from polydistill.errors import PolydistillError

# The files of a model directory polydistill writes (besides what save_pretrained writes).
PROVENANCE_FILE = "polydistill.json"  # machine-readable record of how the model was made
RUN_FILE = "run.json"  # settings, data, fingerprint and result of the training run that made it
LOG_FILE = "log.jsonl"  # every training / evaluation log record, one JSON object a line
CARD_FILE = "README.md"  # the Hugging Face model card
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
_FREE_SPACE_MARGIN = 64 * 2**20  # bytes kept free beyond a writer's estimate


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_VERSIONED = ("polydistill", "torch", "transformers", "datasets", "tokenizers", "accelerate")


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers."""
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _disk_full(err: BaseException) -> bool:
    return (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "No space left" in str(err)


def _disk_full_error(path: Path) -> PolydistillError:
    return PolydistillError(f"The disk holding {path} is full; free some space or write elsewhere (--out).")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary sibling and ``os.replace``."""
    path = Path(path)
    check_output_path(path, kind="file", expected_bytes=len(text.encode("utf-8")))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _disk_full(err):
            raise _disk_full_error(path) from None
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise PolydistillError(f"{path} does not exist.") from err
    except UnicodeDecodeError as err:
        raise PolydistillError(f"{path} is not UTF-8 text ({err.reason}); delete or fix it.") from None
    except json.JSONDecodeError as err:
        raise PolydistillError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}); delete or fix it.") from err


def check_output_path(path: str | os.PathLike, *, kind: str = "directory", expected_bytes: int = 0) -> Path:
    """The preflight of every writer: ``path``'s existing ancestors are directories, the nearest one
    is writable and has room for ``expected_bytes``; an existing ``path`` is of the right ``kind``.
    One sentence per problem, before any slow work."""
    path = Path(path).expanduser()
    if path.exists() and kind == "directory" and not path.is_dir():
        raise PolydistillError(f"{path} is a file, not a directory; choose another output path.")
    if path.is_dir() and kind == "file":
        raise PolydistillError(f"{path} is a directory; give a file name for the output.")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PolydistillError(f"Cannot write {path}: {ancestor} is a file, not a directory; choose another path.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PolydistillError(f"Cannot write {path}: {ancestor} is not writable; choose another path.")
    if expected_bytes:
        free = shutil.disk_usage(ancestor).free
        if free < expected_bytes + _FREE_SPACE_MARGIN:
            raise PolydistillError(
                f"Not enough disk space for {path}: it needs about {expected_bytes / 2**20:,.0f} MiB and "
                f"{free / 2**20:,.0f} MiB are free; free some space or write elsewhere."
            )
    return path


def check_output_dir(out: str | os.PathLike, overwrite: bool, expected_bytes: int = 0) -> Path:
    """The output preflight plus: refuse an existing, non-empty output directory unless ``overwrite``."""
    out = check_output_path(out, expected_bytes=expected_bytes)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PolydistillError(f"Output directory {out} already exists; choose another path or pass --overwrite.")
    return out


def _share(tree: Path) -> None:
    """Give every file and folder of ``tree`` the modes of ordinary files (libraries write some 0600)."""
    mask = _umask()
    os.chmod(tree, 0o777 & ~mask)
    for root, dirs, files in os.walk(tree):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


@contextlib.contextmanager
def atomic_output_dir(out: str | os.PathLike, overwrite: bool = False, expected_bytes: int = 0) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``out`` in one rename.

    On any exception the temporary directory is removed and ``out`` is left as it was.
    """
    out = check_output_dir(out, overwrite, expected_bytes)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield tmp
        _share(tmp)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if _disk_full(err):
            raise _disk_full_error(out) from None
        raise
    if out.exists():
        trash = out.with_name(f".{out.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(out, trash)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)


def remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary siblings (``.<name>.*.tmp``, ``.<name>.old``) a killed writer of ``out`` left."""
    if not out.parent.is_dir():
        return
    for stale in [*out.parent.glob(f".{out.name}.*.tmp"), out.with_name(f".{out.name}.old")]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        elif stale.exists():
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def try_lock(target: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock named after ``target`` (a sibling ``.<name>.lock`` file);
    yields whether it was taken. The OS releases it on any exit, SIGKILL included."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{target.name}.lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_HELD: set[Path] = set()  # outputs this process holds (a stage may take the lock before the core does)


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``out`` for one writer: a second process gets one sentence instead of racing the first.
    Temporaries a killed writer left are removed once the lock is held. Re-entrant in one process."""
    key = Path(out).resolve()
    if key in _HELD:
        yield
        return
    with try_lock(Path(out)) as locked:
        if not locked:
            raise PolydistillError(
                f"Another polydistill process is writing {out}; wait for it to finish or choose another --out."
            )
        remove_stale_temporaries(Path(out))
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)


def strip_remote_code(model_dir: Path) -> None:
    """Remove the custom-code hooks (``auto_map`` and the ``*.py`` files it points to) from a model
    directory we write: polydistill never runs remote code and never hands such a hook on."""
    for name in ("config.json", "tokenizer_config.json"):
        path = model_dir / name
        if not path.is_file():
            continue
        data = read_json(path)
        if isinstance(data, dict) and "auto_map" in data:
            data.pop("auto_map")
            atomic_write_json(path, data)
    for code in model_dir.glob("*.py"):
        code.unlink()


def check_utf8_text(path: str | os.PathLike) -> Path:
    """Refuse a text file that is not UTF-8, naming its first bad line, before a library trips on it."""
    path = Path(path)
    decoder_input = path.read_bytes() if path.is_file() else b""
    try:
        decoder_input.decode("utf-8")
    except UnicodeDecodeError as err:
        line = decoder_input.count(b"\n", 0, err.start) + 1
        raise PolydistillError(f"{path} is not UTF-8 text (line {line}: {err.reason}); convert it to UTF-8, "
                               f"e.g. iconv -f latin1 -t utf-8.") from None
    return path
