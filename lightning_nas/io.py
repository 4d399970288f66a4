"""Files that are either complete or absent, on any filesystem layout.

Every file is written into a temporary sibling (``.NAME.XXXXXXXX.tmp`` in the target's own directory,
never under ``$TMPDIR``, which on a cluster is often another filesystem), flushed and fsynced, then
renamed over the target with ``os.replace`` (atomic within one directory, POSIX ``rename(2)``), and the
directory is fsynced so that the rename itself survives a crash of the machine. A kill at any moment
leaves the old file or the new one, plus at worst a temporary file that nothing reads.

A full disk, an exceeded quota, a read-only filesystem or a refused permission while writing is a
``StorageError`` (one line naming the file and the cause), with the temporary file removed and the
target untouched.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Sequence

from lightning_nas.errors import LightningNASError

# What the storage, not the program, did wrong: a full disk or quota, a read-only (re)mount, a refused
# permission, a failing network filesystem.
STORAGE_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                            errno.EFBIG})


class StorageError(LightningNASError, OSError):
    """A file could not be written because of the storage (full, read-only, no permission); the message
    names the file, the cause and what to do (``storage_error``). Also an ``OSError``, so ``except
    OSError`` still catches it."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def storage_error(path: str | Path, error: OSError, what: str = "", advice: str = "") -> StorageError:
    """``[what ]PATH could not be written: CAUSE; ADVICE`` (default advice: the remedy, and run again)."""
    advice = advice or f"{remedy(error)} and run again"
    return StorageError(error.errno, f"{what + ' ' if what else ''}{path} could not be written: {cause(error)}; "
                                     f"{advice}", str(path))


def is_storage_fault(error: BaseException) -> bool:
    return isinstance(error, OSError) and not isinstance(error, StorageError) and error.errno in STORAGE_FAULTS


def remedy(error: OSError) -> str:
    """What a user does about a storage fault."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free space"
    if error.errno == errno.EROFS:
        return "make the filesystem writable (or copy the run directory elsewhere)"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "make the directory writable"
    return "check the storage"


def cause(error: OSError) -> str:
    """``No space left on device`` (the operating system's words, without the file name)."""
    return error.strerror or os.strerror(error.errno or 0) or type(error).__name__


def temporary_pattern(path: Path) -> str:
    """The glob of the temporary siblings that writes of ``path`` create (and a killed write leaves)."""
    return f".{path.name}.*.tmp"


def remove_temporaries(folder: Path, skip: tuple[str, ...] = ("wandb",)) -> list[Path]:
    """Remove what killed writes left under ``folder`` (``.NAME.XXXXXXXX.tmp``, as ``stage`` names them),
    except under the ``skip`` subfolders. Only for a folder no other process writes to (a locked run)."""
    named = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
    removed = []
    for path in sorted(folder.rglob(".*.tmp")) if folder.is_dir() else []:
        if named.match(path.name) and path.is_file() and not set(path.relative_to(folder).parts[:-1]) & set(skip):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def fsync_directory(folder: Path) -> None:
    """Make the renames in ``folder`` durable. Filesystems that cannot fsync a directory (some network
    filesystems answer EINVAL) are skipped: their rename is as durable as they make it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


class StagedFile:
    """A complete, fsynced temporary sibling of ``target``, waiting to replace it (``commit``) or to be
    thrown away (``discard``)."""

    def __init__(self, temporary: Path, target: Path) -> None:
        self.temporary = temporary
        self.target = target

    def commit(self, keep_previous_as: Path | None = None) -> Path:
        """Rename the temporary file over the target. With ``keep_previous_as``, the current target is first
        renamed there (a file of its own, never a link), so that a kill between the two renames leaves the
        previous file under its new name and the new one as a temporary file: never a mixture."""
        try:
            if keep_previous_as is not None and self.target.exists():
                os.replace(self.target, keep_previous_as)
            os.replace(self.temporary, self.target)
            fsync_directory(self.target.parent)
        except BaseException:
            self.discard()
            raise
        return self.target

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


def stage(path: str | Path, write: Callable[[IO[bytes]], Any]) -> StagedFile:
    """Write ``path``'s new content (``write(handle)``) into a temporary sibling, flushed and fsynced.

    Raises ``StorageError`` naming ``path`` on a storage fault; the temporary file is gone then."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        if is_storage_fault(error):
            raise storage_error(path, error) from error
        raise
    staged = StagedFile(Path(name), path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp creates 0600; results are meant to be shared
    except BaseException as error:
        staged.discard()
        if is_storage_fault(error):
            raise storage_error(path, error) from error  # type: ignore[arg-type]
        raise
    return staged


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """``path`` replaced by what ``write(handle)`` writes, atomically and durably (module docstring)."""
    staged = stage(path, write)
    try:
        return staged.commit()
    except OSError as error:
        if is_storage_fault(error):
            raise storage_error(path, error) from error
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    data = text.encode()
    return atomic_write_bytes(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | Path, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def atomic_write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to a file all or nothing: a write that fails half-way (disk full) is cut back to
    the file's previous length, so that no partial line is left for a reader (or a resume) to misread.
    Raises ``StorageError`` naming the file on a storage fault."""
    data = memoryview(text.encode())
    existed = path.exists()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as error:
        if is_storage_fault(error):
            raise storage_error(path, error) from error
        raise
    size = os.fstat(fd).st_size
    try:
        while data:
            data = data[os.write(fd, data):]
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        if not existed:
            path.unlink(missing_ok=True)
        if is_storage_fault(error):
            raise storage_error(path, error) from error  # type: ignore[arg-type]
        raise
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file's content durable (what an append leaves in the page cache survives a kill -9, not a
    crash of the machine)."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
