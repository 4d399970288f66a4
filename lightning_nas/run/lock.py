"""One process per run directory: ``RUN_DIR/.lock``.

Two commands writing the same run directory (a resume started while the run still lives, a
scheduler's duplicate) would interleave checkpoints and metrics. The launcher process (rank 0 of
node 0) holds an exclusive ``flock`` for the life of the command; DDP processes it starts do not.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from lightning_nas.errors import RecipeError

LOCK_FILE = ".lock"


class RunLockedError(RecipeError):
    """Another process holds the run directory."""


_held_locks: list[tuple[int, Path]] = []


def lock_run_directory(run_dir: Path) -> None:
    """Hold ``RUN_DIR/.lock`` (flock) until the process ends or ``release_locks``; refuse when another holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunLockedError(f"run directory {run_dir} is in use by {holder}; wait for it to end (or stop it) "
                             "before running or resuming it again") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
    _held_locks.append((fd, run_dir))


def release_locks() -> None:
    """Release the locks this process took; a run directory that holds nothing but its lock (the
    command failed before writing anything) is removed again."""
    while _held_locks:
        fd, run_dir = _held_locks.pop()
        with contextlib.suppress(OSError):
            if [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                (run_dir / LOCK_FILE).unlink()
                run_dir.rmdir()
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def is_launcher_process() -> bool:
    """Rank 0 of node 0 (or a single process): the one that guards and records the run directory."""
    return all(os.environ.get(name, "0") in ("", "0") for name in ("LOCAL_RANK", "NODE_RANK"))
