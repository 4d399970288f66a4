"""The git state a record carries: a change of the code makes a run dirty, a change of the results
folder the command itself writes does not (black-box simulations write into results/ in the tree)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from lightning_nas.run_record import git_state


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_git_state_ignores_the_commands_own_outputs_but_not_the_code(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "results" / "exp").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "results" / "exp" / "trajectories.jsonl").write_text("{}\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    outputs = (repo / "results" / "exp",)
    assert git_state(repo) == git_state(repo, outputs) == {"commit": git_state(repo)["commit"], "dirty": False}
    (repo / "results" / "exp" / "trajectories.jsonl").write_text('{"method": "a"}\n')
    assert git_state(repo)["dirty"] is True
    assert git_state(repo, outputs)["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    assert git_state(repo, outputs)["dirty"] is True
    assert git_state(tmp_path / "elsewhere", outputs) == {"commit": None, "dirty": None}
