"""A start that fails leaves the run directory as it found it.

README promises that nothing is written before the checks pass. Most checks run before the run
directory is touched (the parsed values, the data read through the CLI's links, the model, the
ground truth against the space); a few run inside Lightning's fit set-up (a DataModule's loaders),
after the trainer created the directory and wrote ``config.yaml`` and ``hparams.yaml``. ``StartRecord``
notes which directories the command would create and, once the command holds the directory's lock
(``claim``), what the directory holds; when the command fails before its first training step, ``undo``
removes what it created after the claim, restores the files a resume rewrites, and removes the
directories it created if they are empty again, so that the next command finds the directory as it
was. Before the claim another process may be writing there (the one holding the lock), so nothing but
empty directories is removed; once training has started nothing is removed at all: a failure then
keeps its checkpoints and metrics.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, Iterator

from pytorch_lightning import Callback

from lightning_nas.io import atomic_write_text

#: Files a resume rewrites in place (the run record gains a history entry, the resolved recipe is saved again).
REWRITTEN = ("run.json", "config.yaml")


class StartRecord:
    """The directories a command would create, and (from ``claim`` on) what the run directory held."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        created = None  # the outermost directory this command would create (run_dir or an ancestor)
        path = self.run_dir
        while not path.exists() and path != path.parent:
            created, path = path, path.parent
        self.created = created
        self.entries: set[str] | None = None  # top-level entries when the lock was taken
        self.saved: dict[str, str] = {}
        self.training_started = False

    def claim(self, own: tuple[str, ...] = ()) -> None:
        """This command now holds the run directory's lock: every entry that appears from now on is its
        own, and so are the entries named in ``own`` (the lock file, when taking the lock created it)."""
        self.entries = {p.name for p in self.run_dir.iterdir()} - set(own) if self.run_dir.is_dir() else set()
        self.saved = {name: (self.run_dir / name).read_text() for name in REWRITTEN
                      if (self.run_dir / name).is_file()}

    def undo(self) -> None:
        """Remove what this command created in the run directory since its claim, restore the rewritten
        files, and remove the directories it created if they are empty; nothing once training started."""
        if self.training_started or not self.run_dir.is_dir():
            return
        for entry in self.run_dir.iterdir() if self.entries is not None else ():
            if entry.name in self.entries:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
        for name, data in self.saved.items():
            path = self.run_dir / name
            if not path.is_file() or path.read_text() != data:
                atomic_write_text(path, data)
        if self.created is not None:
            path = self.run_dir
            while True:  # the directories it made, innermost first, as long as they are empty
                try:
                    path.rmdir()
                except OSError:
                    break
                if path == self.created:
                    break
                path = path.parent

    @contextlib.contextmanager
    def undone_on_failure(self) -> Iterator[None]:
        """``undo`` when the body raises (an ``Exception``; a stop signal keeps its own handling)."""
        try:
            yield
        except Exception:
            self.undo()
            raise


class TrainingStarted(Callback):
    """Marks the record once Lightning's fit loop starts training: from then on a failure keeps its files."""

    def __init__(self, record: StartRecord) -> None:
        self.record = record

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.record.training_started = True
