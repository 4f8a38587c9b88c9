"""Atomic output: write to a temporary sibling, then rename, so a crash never leaves a partial file or folder.

Files and folders get the usual modes (0644 / 0755 under a umask of 022), like every other tool's. A temporary
sibling is named `.<name>.<random>.interference-tmp`; one left behind by a killed run is recognised by
`is_leftover` (the output-folder guard removes them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".interference-tmp"


def cache_root() -> Path:
    """Root of the toolkit's caches: `$INTERFERENCE_CACHE`, else `~/.cache/interference`."""
    return Path(os.environ.get("INTERFERENCE_CACHE") or Path.home() / ".cache" / "interference")


def is_leftover(name: str) -> bool:
    """Whether `name` is a temporary sibling this module creates (left behind only by a killed run)."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from `open()`: 0666 less the umask (0644 under the usual 022)."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    """The mode a new folder gets from `mkdir`: 0777 less the umask (0755 under the usual 022)."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path to write (e.g. with `torch.save`); it becomes `path` when the block succeeds.

    The temporary file is removed if the block fails; parents are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_with(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` on a temporary sibling, then rename it to `path` (the temporary is removed on failure)."""
    with file(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (parents created)."""
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically (parents created)."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as JSON to `path` atomically, laid out as `json_text` lays it out (NaN is written as null)."""
    return write_text(path, json_text(data))


def json_text(data: Any, allow_nan: bool = True) -> str:
    """`data` as JSON text with a final newline, indented by two spaces except that a list of scalars, and an object
    of scalars that is an item of a list (a record), each take one line: long per-fact records then read as rows
    and weigh about 40 % less than fully indented. NaN is written as null, or refused (ValueError) when
    `allow_nan` is False. `json.loads` of the text gives back what `json.loads(json.dumps(data))` would: tuples as
    lists, non-string keys as strings."""
    return _layout(nan_to_none(data) if allow_nan else data, 0, False, allow_nan) + "\n"


def _layout(value: Any, depth: int, in_list: bool, allow_nan: bool) -> str:
    if isinstance(value, dict):
        items = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return json.dumps(value, allow_nan=allow_nan)
    flat = not any(isinstance(item, dict | list | tuple) and item for item in items)  # empty ones count as flat
    if not items or (flat and (in_list or not isinstance(value, dict))):
        return json.dumps(value, allow_nan=allow_nan)
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        lines = [f"{inner}{_key(k, allow_nan)}: {_layout(v, depth + 1, False, allow_nan)}" for k, v in value.items()]
        return "{\n" + ",\n".join(lines) + f"\n{pad}}}"
    lines = [inner + _layout(item, depth + 1, True, allow_nan) for item in value]
    return "[\n" + ",\n".join(lines) + f"\n{pad}]"


def _key(key: Any, allow_nan: bool) -> str:
    """An object key exactly as `json.dumps` writes it (numbers, booleans and None as strings; other types refused)."""
    return json.dumps({key: 0}, allow_nan=allow_nan)[1:-4]


def nan_to_none(value: Any) -> Any:
    """`value` with every NaN float (in nested dicts, lists and tuples) as None, which JSON writes as null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    return value


def _set_modes(root: Path) -> None:
    """Give a finished temporary tree the usual modes (mkdtemp/mkstemp create 0700/0600)."""
    files, folders = file_mode(), folder_mode()
    root.chmod(folders)
    for parent, dirs, names in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(parent, name), folders)
        for name in names:
            target = os.path.join(parent, name)
            if not os.path.islink(target) and os.stat(target).st_mode & 0o777 == 0o600:
                os.chmod(target, files)


@contextlib.contextmanager
def directory(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory that becomes `path` when the block succeeds (and vanishes if it fails)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX))
    try:
        yield tmp
        _set_modes(tmp)
        if path.exists():
            if not overwrite:
                raise FileExistsError(path)
            old = path.with_name(f".{path.name}.old-{os.getpid()}{TMP_SUFFIX}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
