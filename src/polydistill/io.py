"""Files: atomic writes, the output preflight every writer runs, locks, and the names of the files
in a polydistill model directory.

Results and model directories are written next to their destination and renamed into place, so an
interrupted run never leaves a half-written file or directory behind; a temporary sibling that a
kill left behind is removed by the next run that takes the output's lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from filelock import FileLock, Timeout

from polydistill.errors import PolydistillError

if TYPE_CHECKING:
    from pydantic import BaseModel

BaseModelT = TypeVar("BaseModelT", bound="BaseModel")

# The files of a model directory polydistill writes (besides what save_pretrained writes).
PROVENANCE_FILE = "polydistill.json"  # machine-readable record of how the model was made
RUN_FILE = "run.json"  # settings, data, fingerprint and result of the training run that made it
LOG_FILE = "log.jsonl"  # every training / evaluation log record, one JSON object a line
CARD_FILE = "README.md"  # the Hugging Face model card
COMPRESS_FILE = "compress.json"  # the fingerprint of a polydistill compress run (at the top of its DIR)
# A folder holding one of these is a polydistill output: the only kind of folder --overwrite replaces.
OUTPUT_RECORDS = (PROVENANCE_FILE, RUN_FILE, COMPRESS_FILE)
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
    # a result file, or a file of a model directory being written: a user's file output (evaluate --out,
    # bench --out) is checked against model directories by its command's preflight
    check_output_path(path, kind="file", expected_bytes=len(text.encode("utf-8")), into_models=True)
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


# ------------------------------------------------------------------------------------ output safety
# The inputs of the command running in this context (resolved local paths): an output may not be one of
# them, hold one of them, or lie inside one of them. Commands declare them with :func:`reading`.
_READING: ContextVar[tuple[Path, ...]] = ContextVar("polydistill_reading", default=())


def _named_paths(value: str) -> list[str]:
    """``value`` and the paths it names in the compound spellings of sources: ``LANG=FILE`` (``--corpus``,
    ``--heldout``, ``--unlabelled-data``) and ``DATASET:LANGUAGES`` with a local dataset folder
    (``--unlabelled-data``). Parts that are not existing local paths are ignored by the preflight."""
    named = [value]
    if "=" in value:
        named.append(value.partition("=")[2])
    if ":" in value:
        named.append(value.partition(":")[0])
    return [part for part in named if part.strip()]


def _local_paths(value: object) -> list[Path]:
    """The existing local paths ``value`` is or names (a hub id or a dataset name is not a local input)."""
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        return []
    found = []
    for part in _named_paths(str(value)):
        path = Path(part).expanduser()
        if path.exists():
            found.append(path.resolve())
    return found


@contextlib.contextmanager
def reading(*paths: object) -> Iterator[None]:
    """Declare what the running command reads (models, data folders, corpora) for the duration of the
    block: every output preflight inside it refuses an output that is, holds or lies inside one of them.
    Values that are not existing local paths (hub ids, dataset names, loaded models, None) are ignored.
    Nests; a library function may instead pass ``inputs`` to the preflight itself."""
    local = tuple(p for value in paths for p in _local_paths(value))
    token = _READING.set(_READING.get() + local)
    try:
        yield
    finally:
        _READING.reset(token)


def is_polydistill_output(folder: Path) -> bool:
    """Whether ``folder`` holds one of polydistill's records (a model it wrote, a run, a compress DIR)."""
    return any((folder / name).is_file() for name in OUTPUT_RECORDS)


def _is_model_dir(folder: Path) -> bool:
    if not (folder / "config.json").is_file():
        return False
    return any(f.suffix in (*WEIGHT_SUFFIXES, ".onnx", ".xml") for f in folder.iterdir() if f.is_file())


def _check_safe(path: Path, kind: str, inputs: tuple[object, ...], into_models: bool) -> None:
    """The output-safety rule (issue #35): nothing a command reads, no model directory and nothing that is
    not an ordinary file or folder is ever replaced or written into by an output."""
    if path.is_symlink():
        raise PolydistillError(f"{path} is a symbolic link (to {os.readlink(path)}); polydistill does not write "
                               "through links: pass the link's target itself as the output, or another path.")
    for ancestor in path.absolute().parents:
        if ancestor.is_symlink() and not ancestor.exists():
            raise PolydistillError(f"Cannot write {path}: {ancestor} is a symbolic link to a path that does not "
                                   "exist; fix the link or choose another path.")
    if path.exists() and not path.is_dir() and not path.is_file():
        raise PolydistillError(f"{path} is not an ordinary file or folder (a device, a pipe or a socket); "
                               "choose another output path.")
    resolved = path.resolve()
    if kind == "directory" and Path.cwd().resolve().is_relative_to(resolved):
        raise PolydistillError(f"The output {path} is the current directory or holds it; name a new folder "
                               "for the output.")
    for source in (*_READING.get(), *(p for value in inputs for p in _local_paths(value))):
        if resolved == source:
            raise PolydistillError(f"The output {path} is an input of this command; write the output elsewhere.")
        if source.is_relative_to(resolved):
            raise PolydistillError(f"The output {path} holds an input of this command ({source}), which writing "
                                   "it could delete; choose another output path.")
        if resolved.is_relative_to(source):
            raise PolydistillError(f"The output {path} lies inside an input of this command ({source}); write "
                                   "the output elsewhere.")
    for ancestor in () if into_models else resolved.parents:
        if _is_model_dir(ancestor):
            raise PolydistillError(f"The output {path} lies inside the model directory {ancestor}, which it "
                                   "would corrupt; write the output elsewhere.")


@overload
def read_record(path: str | os.PathLike, schema: type[BaseModelT]) -> BaseModelT: ...


@overload
def read_record(path: str | os.PathLike, schema: Any) -> Any: ...


def read_record(path: str | os.PathLike, schema: Any) -> Any:
    """A record polydistill wrote (run.json, polydistill.json, compress.json, a done marker, report.json, a
    stage's evaluation), read back through its pydantic ``schema``: a hand-edited file of another shape is one
    sentence naming the file and the field, never a traceback further on. ``schema``: a pydantic model (its
    instance is returned) or any type pydantic validates, e.g. a ``TypedDict`` (the validated dict is
    returned, for readers that use the record as a dict)."""
    from pydantic import BaseModel, TypeAdapter, ValidationError

    data = read_json(path)
    try:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return schema.model_validate(data)
        return TypeAdapter(schema).validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise PolydistillError(f"{path} is not a polydistill record of the expected shape ({field}: "
                               f"{first['msg'].lower()}); was it edited by hand? Restore or delete it.") from None


def weight_digests(folder: Path, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> dict[str, str]:
    """SHA-256 of every weight file (by default of :data:`WEIGHT_SUFFIXES`) at the top of a model directory: a
    finished run or step records them, so a file truncated or replaced afterwards is noticed instead of being
    reported as done."""
    digests = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in suffixes:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(2**22), b""):
                    digest.update(block)
            digests[path.name] = digest.hexdigest()
    return digests


def check_output_path(path: str | os.PathLike, *, kind: str = "directory", expected_bytes: int = 0,
                      inputs: tuple[object, ...] = (), into_models: bool = False) -> Path:
    """The preflight of every writer: the output-safety rule (:func:`reading` and ``inputs``; no output
    inside a model directory unless ``into_models``: the writer's own files of a model it is writing), then
    ``path``'s existing ancestors are directories, the nearest one is writable and has room for
    ``expected_bytes``; an existing ``path`` is of the right ``kind``. One sentence per problem, before any
    slow work."""
    if not str(path).strip():
        raise PolydistillError("The output path is empty; give a file or folder name.")
    path = Path(path).expanduser()
    _check_safe(path, kind, tuple(inputs), into_models)
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
        margin = min(_FREE_SPACE_MARGIN, expected_bytes)  # a small output needs no 64 MiB margin
        if free < expected_bytes + margin:
            raise PolydistillError(
                f"Not enough disk space for {path}: it needs about {_mib(expected_bytes + margin)} and "
                f"{_mib(free)} are free; free some space or write elsewhere."
            )
    return path


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB" if size >= 2**20 else f"{size / 2**10:,.0f} KiB"


def check_output_dir(out: str | os.PathLike, overwrite: bool, expected_bytes: int = 0, *, own: bool = False,
                     inputs: tuple[object, ...] = ()) -> Path:
    """The output preflight plus: refuse an existing, non-empty output directory unless ``overwrite``, and
    even then unless it is one of polydistill's outputs (:data:`OUTPUT_RECORDS`) — ``--overwrite`` never
    replaces a foreign folder. ``own``: the caller names the folder itself (a cache entry, a stage of its
    own output) and may replace whatever is there."""
    out = check_output_path(out, expected_bytes=expected_bytes, inputs=inputs)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise PolydistillError(f"Output directory {out} already exists; choose another path or pass --overwrite.")
        if not own and not is_polydistill_output(out):
            raise PolydistillError(
                f"{out} is not an output of polydistill (it holds none of {', '.join(OUTPUT_RECORDS)}), and "
                "--overwrite only replaces polydistill's own outputs; choose another path, or remove it yourself.")
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
def atomic_output_dir(out: str | os.PathLike, overwrite: bool = False, expected_bytes: int = 0, *,
                      own: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``out`` in one rename.

    On any exception the temporary directory is removed and ``out`` is left as it was. ``overwrite`` and
    ``own`` as in :func:`check_output_dir`.
    """
    out = check_output_dir(out, overwrite, expected_bytes, own=own)
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


def _file_lock(target: Path) -> FileLock:
    """The lock of ``target``: a sibling ``.<name>.lock`` file (filelock; the OS releases it on any exit, SIGKILL
    included). Not thread-local: a grid driver takes and releases cell locks from its scheduling thread."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(target.with_name(f".{target.name}.lock"), thread_local=False)


@contextlib.contextmanager
def try_lock(target: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock of ``target``; yields whether it was taken."""
    lock = _file_lock(target)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextlib.contextmanager
def wait_lock(target: Path) -> Iterator[None]:
    """Hold the lock of ``target``, waiting while another process holds it: for a shared artefact another run
    may be building (the waiter then finds it built and reuses it)."""
    with _file_lock(target):
        yield


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


# tokenizer_config.json class names that only transformers 5 knows -> the name transformers 4.x and 5.x both load
# (the generic fast tokenizer, read from tokenizer.json; optimum-onnx still runs on transformers 4.x)
PORTABLE_TOKENIZER_CLASSES = {"TokenizersBackend": "PreTrainedTokenizerFast"}


def make_portable(model_dir: Path) -> None:
    """What a model directory we write hands on: no custom-code hooks (``auto_map`` and the ``*.py`` files it
    points to: polydistill never runs remote code and never hands such a hook on), and a tokenizer class name
    that transformers 4.x (optimum's ``ORTModel…`` / ``OVModel…``) and 5.x both load."""
    for name in ("config.json", "tokenizer_config.json"):
        path = model_dir / name
        if not path.is_file():
            continue
        data = read_json(path)
        if not isinstance(data, dict):
            continue
        changed = data.pop("auto_map", None) is not None
        if name == "tokenizer_config.json" and data.get("tokenizer_class") in PORTABLE_TOKENIZER_CLASSES:
            data["tokenizer_class"] = PORTABLE_TOKENIZER_CLASSES[data["tokenizer_class"]]
            changed = True
        if changed:
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
