"""The output-folder guard: check an output folder before any work, lock it while a run writes, and never touch a
file the toolkit did not write.

    with claim_output(args.out, "analyses.overlap", overwrite=args.overwrite) as out:
        ...                                   # the work
        out.write_text("results.json", text)  # atomic, and recorded as the toolkit's
        with out.directory("model") as tmp:   # a whole folder, atomically
            save(tmp)

`claim_output` refuses, each with one line and before any work: a path that is a file, below a file or not
writable; a folder that holds files the toolkit did not write for this kind of run (unless `overwrite=True`; even
then those files are kept, and a write that would replace one is refused); a folder another run is writing to.
The files the toolkit wrote are listed in `.interference.json` in the folder (the marker); only those are ever
replaced or removed. The lock is an `flock` on the folder itself, released when the block ends (or the process
dies), so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import itertools
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from . import atomic
from .errors import InterferenceError

MARKER = ".interference.json"


def check_folder_target(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Refuse (one line) a folder path that is a file, lies below a file, or cannot be written; nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InterferenceError(f"{what} {path} is a file, not a folder")
    return _check_writable(path, what)


def check_file_target(path: str | os.PathLike, what: str = "output file") -> Path:
    """Refuse (one line) a file path that is a folder, lies below a file, or whose folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise InterferenceError(f"{what} {path} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise InterferenceError(f"{what} {path} is not writable")
    _check_writable(path.parent if str(path.parent) else Path("."), what, of=path)
    return path


def _check_writable(path: Path, what: str, of: Path | None = None) -> Path:
    """The nearest existing folder at or above `path` must be a writable folder."""
    of = of or path
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise InterferenceError(f"{what} {of}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InterferenceError(f"{what} {of}: {existing} is not writable")
    return path


def _files_under(root: Path) -> Iterator[str]:
    """Every file (or link) below `root`, as posix paths relative to it, in a stable order."""
    for parent, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(parent, d))]:
            yield Path(os.path.relpath(os.path.join(parent, name), root)).as_posix()


class OutputFolder:
    """A claimed output folder: write files through it (or `register` them) so the marker knows them."""

    def __init__(self, path: Path, kind: str, known: set[str], overwrite: bool):
        self.path = path
        self.kind = kind
        self.overwrite = overwrite
        self._known = known  # files the toolkit wrote here (this run or an earlier one)
        self.written: set[str] = set()  # files this run wrote
        self.earlier = frozenset(known)  # files an earlier run wrote, as found when claimed

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def _relative(self, name: str | os.PathLike) -> str:
        target = Path(name)
        if target.is_absolute():
            target = target.relative_to(self.path)
        return target.as_posix()

    def foreign(self, name: str | os.PathLike = ".", limit: int | None = None) -> list[str]:
        """Files at or below `name` that the toolkit did not write (they are never replaced or removed); the first
        `limit` of them (a folder such as a home folder is not walked to its end to say it is not ours). A subfolder
        with a marker of its own is another run's output folder (a suite's part, say, claimed by the part's own
        command): the files its marker lists are the toolkit's, even where this folder's marker does not know them
        yet, as after a run killed before it recorded them."""
        rel = self._relative(name)
        target = self.path / rel
        if target.is_symlink() or target.is_file():
            return [] if self._written_by_toolkit(rel) else [rel]
        if not target.is_dir():
            return []
        prefix = "" if rel == "." else rel + "/"
        found = (
            prefix + f
            for f in _files_under(target)
            if not self._written_by_toolkit(prefix + f)
            and not any(atomic.is_leftover(part) for part in Path(f).parts)  # a temporary of a write under way
        )
        return list(itertools.islice(found, limit))

    def _written_by_toolkit(self, rel: str) -> bool:
        """Whether this folder's marker lists `rel` (or `rel` is that marker), or the marker of a subfolder above it
        does (`_nested_known`)."""
        return rel in self._known or rel == MARKER or any(
            rel in _nested_known(self.path, parent) for parent in Path(rel).parents)

    def check_replace(self, name: str | os.PathLike) -> Path:
        """Refuse (one line) to write `name` if that would replace a file the toolkit did not write."""
        foreign = self.foreign(name)
        if foreign:
            raise InterferenceError(
                f"{self.path / foreign[0]} was not written by interference and would be replaced; move it away")
        return self.path / self._relative(name)

    def register(self, *names: str | os.PathLike) -> None:
        """Record files (or every file below folders) at these paths, relative to the folder, as the toolkit's."""
        files = []
        for name in names:
            rel = self._relative(name)
            target = self.path / rel
            files += [f"{rel}/{f}" for f in _files_under(target)] if target.is_dir() else [rel]
        self._record(files)

    def _record(self, files: Iterable[str]) -> None:
        """Record `files` as written by this run, in the marker."""
        files = set(files)
        self._known |= files
        self.written |= files
        self._save()

    def _forget(self, rel: str) -> None:
        gone = {f for f in self._known if f == rel or f.startswith(rel + "/")}
        self._known -= gone
        self.written -= gone

    def write_text(self, name: str, text: str) -> Path:
        """Write `name` atomically and record it."""
        return self.write_with(name, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def write_json(self, name: str, data: Any) -> Path:
        """Write `name` as JSON atomically (NaN as null) and record it."""
        return self.write_text(name, atomic.json_text(data))

    def write_with(self, name: str, write) -> Path:
        """Call `write(tmp)` on a temporary file that becomes `name` atomically; record it first (a kill between
        the two leaves a recorded name that does not exist, which is harmless)."""
        target = self.check_replace(name)
        self._record([self._relative(name)])
        return atomic.write_with(target, write)

    @contextlib.contextmanager
    def directory(self, name: str) -> Iterator[Path]:
        """Yield a temporary folder that atomically becomes `name` (replacing the toolkit's earlier one) and record
        its files. Refused before the block if the folder there holds files the toolkit did not write."""
        target = self.check_replace(name)
        rel = self._relative(name)
        with atomic.directory(target) as tmp:
            yield tmp
            self.check_replace(name)  # nobody put a file in the folder it replaces while the block ran
            self._forget(rel)
            self._record(f"{rel}/{f}" for f in _files_under(tmp))

    def remove(self, name: str | os.PathLike) -> None:
        """Remove the file or folder `name` if the toolkit wrote everything in it; refuse (one line) otherwise."""
        target = self.check_replace(name)
        rel = self._relative(name)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        self._forget(rel)
        self._save()

    def remove_earlier(self, keep: Iterable[str] = ()) -> list[str]:
        """Remove the files an earlier run wrote that this run did not (stale results), except those matching the
        glob patterns `keep`; folders left empty are removed too. Returns what was removed."""
        keep = list(keep)
        stale = sorted(
            f for f in self.earlier
            if f not in self.written and f in self._known and not any(fnmatch.fnmatch(f, k) for k in keep)
        )
        for rel in stale:
            with contextlib.suppress(FileNotFoundError):
                (self.path / rel).unlink()
            self._known.discard(rel)
            parent = (self.path / rel).parent
            while parent != self.path:
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only if empty
                parent = parent.parent
        self._save()
        return stale

    def _save(self) -> None:
        present = {f for f in self._known if (self.path / f).exists() or (self.path / f).is_symlink()}
        atomic.write_json(self.path / MARKER, {"kind": self.kind, "files": sorted(present | self.written)})


def _read_marker(path: Path) -> tuple[str | None, set[str]]:
    marker = path / MARKER
    if not marker.exists():
        return None, set()
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        return str(data["kind"]), {str(f) for f in data["files"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InterferenceError(f"{marker} is damaged ({type(err).__name__}); remove it to use this folder") from err


def _nested_known(root: Path, rel: Path) -> set[str]:
    """The files (relative to `root`) that the marker of the subfolder `rel` lists, with the marker itself; none
    when `rel` is `root`, has no marker, or its marker is damaged (then its files are not trusted as the toolkit's)."""
    if rel == Path(".") or not (root / rel / MARKER).is_file():
        return set()
    try:
        _, files = _read_marker(root / rel)
    except InterferenceError:
        return set()
    prefix = rel.as_posix()
    return {f"{prefix}/{f}" for f in files} | {f"{prefix}/{MARKER}"}


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise InterferenceError(f"another run is writing to {path}") from None
        raise InterferenceError(f"cannot lock {path}: {err.strerror}") from None
    return fd


def _remove_leftovers(path: Path) -> None:
    """Temporary siblings left by a killed run (held under the lock, so no run is writing them now). Subfolders with
    a marker of their own are other runs' output folders, locked on their own: their run may be writing there now,
    and removes its leftovers when it claims them."""
    for parent, dirs, names in os.walk(path):
        for name in list(dirs):
            if atomic.is_leftover(name):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
                dirs.remove(name)
            elif os.path.isfile(os.path.join(parent, name, MARKER)):
                dirs.remove(name)
        for name in names:
            if atomic.is_leftover(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(parent, name))


@contextlib.contextmanager
def claim_output(
    path: str | os.PathLike, kind: str, *, overwrite: bool = False, resume: bool = False,
    writes: Iterable[str] = (), what: str = "--out",
) -> Iterator[OutputFolder]:
    """Check, create and lock the output folder `path` for a run of `kind` (e.g. "train", "analyses.ffn").

    Refused, each with one line, before any work:
    - `path` is a file, lies below a file, or cannot be written;
    - another run holds the folder's lock;
    - it holds files the toolkit did not write for a run of `kind` (a user's, or another command's), unless
      `overwrite` (the user's files are then kept);
    - with `resume`, it holds another command's run;
    - `writes` (glob patterns of what this run will write, e.g. "model", "checkpoint-*") matches a file or folder
      that holds a file the toolkit did not write (it would be replaced).
    Leftover temporary files of a killed run are removed. The lock is released when the block ends; a folder this
    call created is removed again if the block fails before writing anything.
    """
    path = check_folder_target(path, what)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InterferenceError(f"{what} {path}: cannot create it ({err.strerror})") from None
    fd = _lock(path)
    try:
        folder = _check_contents(path, kind, overwrite=overwrite, resume=resume, writes=writes, what=what)
    except BaseException:
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    try:
        yield folder
    except BaseException:
        if created and not folder.written and os.listdir(path) == [MARKER]:  # a failed run leaves no empty folder
            with contextlib.suppress(OSError):
                (path / MARKER).unlink()
                path.rmdir()
        raise
    finally:
        os.close(fd)


def _check_contents(path: Path, kind: str, *, overwrite: bool, resume: bool, writes: Iterable[str],
                    what: str) -> OutputFolder:
    earlier_kind, known = _read_marker(path)
    folder = OutputFolder(path, kind, set(), overwrite)
    if earlier_kind == kind or overwrite:
        folder._known = set(known)
        folder.earlier = frozenset(known)
    if resume and earlier_kind not in (None, kind):
        raise InterferenceError(f"{what} {path} holds a run of {earlier_kind}, not of {kind}; cannot resume it")
    foreign = [] if overwrite else folder.foreign(limit=4)
    if foreign:
        users = OutputFolder(path, kind, set(known), overwrite).foreign(limit=4)  # not even another command's
        if not users:
            shown = ", ".join(foreign[:3]) + (" and more" if len(foreign) > 3 else "")
            raise InterferenceError(f"{what} {path} holds a run of {earlier_kind} ({shown}); choose another folder "
                                    "or pass --overwrite to replace it")
        shown = ", ".join(users[:3]) + (" and more" if len(users) > 3 else "")
        raise InterferenceError(f"{what} {path} holds files interference did not write ({shown}); choose another "
                                "folder or pass --overwrite (they are kept)")
    _remove_leftovers(path)
    for pattern in writes:
        for entry in sorted(path.glob(pattern)):
            folder.check_replace(entry.relative_to(path).as_posix())
    folder._save()
    return folder
