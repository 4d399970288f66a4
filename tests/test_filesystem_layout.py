"""Checkpoints and metrics on any filesystem layout (issue 18): ``$TMPDIR`` on another filesystem than
the run directory, a kill between or right after the renames of a checkpoint write, a full disk or a
read-only filesystem during a checkpoint or a metrics write.

Kills land exactly where they hurt: the training subprocess wraps ``os.replace`` (the rename that makes
a checkpoint count) and SIGKILLs itself just before or after the n-th rename onto a chosen file. The
resumed run's whole directory is then compared with an uninterrupted run's.
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY_RECIPE, run_train
from test_run_robustness import _one_error_line
from test_train_integration import _env

SHORT = ["--ranking.num_architectures", 2, "--selection.num_architectures", 2]

# train.py, with os.replace wrapped: SIGKILL itself just before/after the n-th rename onto a file name
KILLER = """
import os, signal, sys
from pathlib import Path
name, nth, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real, seen = os.replace, [0]
def replace(src, dst, *args, **kwargs):
    if Path(dst).name != name:
        return real(src, dst, *args, **kwargs)
    seen[0] += 1
    if seen[0] == nth and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst, *args, **kwargs)
    if seen[0] == nth and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
from lightning_nas.app import main
sys.exit(main(sys.argv[4:]))
"""


def _run(run_dir: Path, tmp_path: Path, *extra: object) -> None:
    assert run_train(["--recipe", TINY_RECIPE, "--run_dir", run_dir, *SHORT, *extra], tmp_path) == 0


def _step(path: Path) -> int:
    return int(torch.load(path, weights_only=True, map_location="cpu")["global_step"])


def _files(run_dir: Path) -> dict[str, Path]:
    return {str(p.relative_to(run_dir)): p for p in sorted(run_dir.rglob("*")) if p.is_file()}


def assert_same_run_directory(a: Path, b: Path) -> None:
    """Every file of two run directories: the same names, the same bytes (the run directory's own path
    written as RUN), checkpoints the same tensors and loop state; only run.json (times, commands) and
    the lock differ by nature."""
    files_a, files_b = _files(a), _files(b)
    assert files_a.keys() == files_b.keys()
    for name, path in files_a.items():
        if name in ("run.json", ".lock"):
            continue
        if name.endswith(".ckpt"):
            ca, cb = (torch.load(p, weights_only=True, map_location="cpu") for p in (path, files_b[name]))
            assert ca["global_step"] == cb["global_step"] and ca["loops"] == cb["loops"], name
            assert ca["state_dict"].keys() == cb["state_dict"].keys()
            assert all(torch.equal(ca["state_dict"][k], cb["state_dict"][k]) for k in ca["state_dict"]), name
            assert torch.equal(ca["architecture_generator"], cb["architecture_generator"]), name
            continue
        text_a = path.read_bytes().replace(str(a).encode(), b"RUN")
        text_b = files_b[name].read_bytes().replace(str(b).encode(), b"RUN")
        assert text_a == text_b, f"{name} differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The tiny recipe (one epoch, 35 steps, a checkpoint every 5), never interrupted."""
    base = tmp_path_factory.mktemp("layout")
    _run(base / "run", base)
    return base / "run"


# ---------------------------------------------------------------------------------------- TMPDIR elsewhere
def test_tmpdir_on_a_tmpfs_keeps_two_distinct_checkpoints(tmp_path, monkeypatch, reference):
    """Run directory on disk, $TMPDIR on a tmpfs: the layout that made the 4th checkpoint raise
    shutil.SameFileError and made last.prev.ckpt a hard link of last.ckpt."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's run directory")
    elsewhere = Path(tempfile.mkdtemp(dir=shm, prefix="lnas-tmpdir-"))
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    try:
        run_dir = tmp_path / "run"
        _run(run_dir, tmp_path)
        checkpoints = run_dir / "checkpoints"
        assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt", "last.prev.ckpt"]  # no stray file
        last, previous = checkpoints / "last.ckpt", checkpoints / "last.prev.ckpt"
        assert os.stat(last).st_ino != os.stat(previous).st_ino
        assert os.stat(last).st_nlink == 1 and os.stat(previous).st_nlink == 1
        assert (_step(last), _step(previous)) == (35, 30)
        assert not list(elsewhere.rglob("*.ckpt*")) and not list(elsewhere.glob("tmp*"))  # nothing through $TMPDIR
        assert_same_run_directory(reference, run_dir)  # and the same results as the usual layout
    finally:
        for path in sorted(elsewhere.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        elsewhere.rmdir()


# ---------------------------------------------------------------------------------------- kills
def _killed(run_dir: Path, name: str, nth: int, when: str) -> None:
    args = ["--recipe", TINY_RECIPE, "--run_dir", run_dir, *SHORT]
    done = subprocess.run([sys.executable, "-c", KILLER, name, str(nth), when, *map(str, args)], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]


@pytest.mark.parametrize("name, nth, when, resume_step", [
    ("last.ckpt", 3, "after", 15),
    ("last.prev.ckpt", 3, "after", 15),
    ("epoch_000.csv", 1, "before", 30),
    ("last.ckpt", 7, "after", 35),
], ids=["right after the 3rd checkpoint (step 15) is renamed into place",
        "between the two renames of the 4th checkpoint (step 20)",
        "during the epoch-end ranking after the last step's checkpoint (step 35) was written",
        "right after the final checkpoint (step 35, after the epoch's ranking)"])
def test_kill_at_a_checkpoint_write_then_resume_equals_uninterrupted(reference, tmp_path, name, nth, when,
                                                                        resume_step, capsys):
    run_dir = tmp_path / "run"
    _killed(run_dir, name, nth, when)
    checkpoints = run_dir / "checkpoints"
    readable = {p.name: _step(p) for p in checkpoints.glob("last*.ckpt")}
    assert max(readable.values()) == resume_step, readable
    assert "last.ckpt" not in readable or readable.get("last.prev.ckpt", -1) < readable["last.ckpt"]
    assert run_train(["--resume", run_dir], tmp_path) == 0
    assert "truncated or corrupt" not in capsys.readouterr().err  # a leftover temporary file is no damaged checkpoint
    assert not list(checkpoints.glob(".*"))  # and the next save removed it
    assert (run_dir / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    assert_same_run_directory(reference, run_dir)


# ---------------------------------------------------------------------------------------- full or read-only storage
def test_disk_full_during_a_checkpoint_is_one_line_and_keeps_the_last_good_one(tmp_path, monkeypatch, capsys):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to tell which file a write goes to")
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        name = getattr(f, "name", "")
        name = os.readlink(f"/proc/self/fd/{name}") if isinstance(name, int) else name  # an os.fdopen handle
        if Path(name).parent == checkpoints:
            saves.append(1)
            if len(saves) == 3:  # the step-15 checkpoint: half written, then the disk is full
                f.write(b"\0" * 4096)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    line = _one_error_line(["--recipe", TINY_RECIPE, "--run_dir", run_dir, *SHORT], tmp_path, capsys)
    last = checkpoints / "last.ckpt"
    assert line == (f"train.py: error: checkpoint {last} could not be written: No space left on device; the last good "
                    f"checkpoint (step 10) is intact: free space and --resume {run_dir}")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt", "last.prev.ckpt"]  # no temporary file
    assert (_step(last), _step(checkpoints / "last.prev.ckpt")) == (10, 5)
    monkeypatch.setattr(torch, "save", real_save)
    assert run_train(["--resume", run_dir, "--trainer.max_steps", 20], tmp_path) == 0
    assert _step(last) == 20


def test_read_only_metrics_file_is_one_line_and_leaves_no_partial_row(tmp_path, monkeypatch, capsys):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to tell which file a write goes to")
    run_dir = tmp_path / "run"
    real_write, writes = os.write, []

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}") == str(run_dir / "metrics.csv"):
            writes.append(1)
            if len(writes) == 12:  # half of the row goes out, then the filesystem is remounted read-only
                return real_write(fd, bytes(data)[:len(data) // 2])
            if len(writes) > 12:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    line = _one_error_line(["--recipe", TINY_RECIPE, "--run_dir", run_dir, *SHORT], tmp_path, capsys)
    monkeypatch.setattr(os, "write", real_write)
    assert line.startswith(f"train.py: error: metrics file {run_dir / 'metrics.csv'} could not be written: "
                           "Read-only file system; the last good checkpoint (step 10) is intact: make the filesystem "
                           "writable") and line.endswith(f"--resume {run_dir}"), line
    assert (run_dir / "metrics.csv").read_text().endswith("\n")  # the half row was cut back
    assert _step(run_dir / "checkpoints" / "last.ckpt") == 10
    assert not list((run_dir / "checkpoints").glob(".*"))
