"""Runs that survive what clusters do (issue 11): thread counts, damaged checkpoints, a second process,
bad values caught before training, errors, outputs. The end-to-end SIGTERM and moved-directory
resumptions are in test_train_integration.py (they share its uninterrupted reference run)."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY_RECIPE, run_train
from test_train_integration import _env, checkpoint_step, train


def _one_error_line(args: list, tmp_path: Path, capsys) -> str:
    assert run_train(args, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("train.py: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _short_run(tmp_path: Path, steps: int = 10) -> Path:
    """A run stopped at ``steps`` (checkpoints every 5 steps: last.ckpt and last.prev.ckpt)."""
    run_dir = tmp_path / "run"
    assert run_train(["--recipe", TINY_RECIPE, "--run_dir", run_dir, "--trainer.max_steps", steps,
                      "--ranking.num_architectures", 2, "--selection.num_architectures", 2], tmp_path) == 0
    return run_dir


# ---------------------------------------------------------------------------------------- signals
def test_scoring_loops_stop_between_architectures(monkeypatch):
    from lightning_nas import scoring, signals

    scored = []
    monkeypatch.setattr(scoring, "score", lambda *args: scored.append(1) or 0.0)

    class Strategy:
        supernet = None

        def architecture_forward(self, arch):
            if arch == 1:
                signals._handler(signal.SIGTERM, None)  # the signal arrives while architecture 1 is scored
            return None

    try:
        with pytest.raises(signals.Interrupted) as stop:
            scoring.score_architectures(Strategy(), [0, 1, 2, 3], [])
    finally:
        signals.reset()
    assert len(scored) == 2 and stop.value.code == 128 + signal.SIGTERM


# ---------------------------------------------------------------------------------------- damaged checkpoints
def test_truncated_checkpoint_falls_back_or_is_one_line(tmp_path, capsys):
    run_dir = _short_run(tmp_path)
    checkpoints = run_dir / "checkpoints"
    assert checkpoint_step(run_dir) == 10
    last = checkpoints / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])
    assert run_train(["--resume", run_dir, "--trainer.max_steps", 15], tmp_path) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {last} is truncated or corrupt" in err and "last.prev.ckpt (step 5)" in err
    assert checkpoint_step(run_dir) == 15 and (checkpoints / "last.ckpt.corrupt").is_file()

    for path in checkpoints.glob("last*.ckpt"):
        path.write_bytes(path.read_bytes()[:3000])
    line = _one_error_line(["--resume", run_dir], tmp_path, capsys)
    assert "last" in line and "truncated or corrupt" in line and str(checkpoints) in line


# ---------------------------------------------------------------------------------------- thread count
def test_resume_restores_the_thread_count_and_refuses_another(tmp_path, capsys):
    run_dir = _short_run(tmp_path, steps=5)
    assert json.loads((run_dir / "run.json").read_text())["torch_threads"] == 1
    assert "threads: 1" in (run_dir / "config.yaml").read_text()
    line = _one_error_line(["--resume", run_dir, "--threads", 2], tmp_path, capsys)
    assert "1 torch thread" in line and "--threads 2" in line and "--allow_thread_change" in line
    torch.set_num_threads(2)  # e.g. another OMP_NUM_THREADS on the resuming machine
    try:
        assert run_train(["--resume", run_dir, "--trainer.max_steps", 10], tmp_path) == 0
        assert torch.get_num_threads() == 2  # the process's own count is given back afterwards
    finally:
        torch.set_num_threads(1)
    history = json.loads((run_dir / "run.json").read_text())["history"]
    assert [(h["event"], h["torch_threads"]) for h in history] == [("start", 1), ("resume", 1)]


# ---------------------------------------------------------------------------------------- concurrent processes
def test_second_process_on_a_locked_run_directory_is_refused(tmp_path):
    run_dir = _short_run(tmp_path, steps=5)
    fd = os.open(run_dir / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running train.py holds for its whole life
    try:
        done = train(["--resume", run_dir, "--trainer.max_steps", 10], timeout=120)
    finally:
        os.close(fd)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("train.py: error:")]
    assert len(errors) == 1 and "in use by" in errors[0] and str(run_dir) in errors[0], done.stderr
    assert checkpoint_step(run_dir) == 5


# ---------------------------------------------------------------------------------------- values checked before training
@pytest.mark.parametrize("args, key", [
    (["--trainer.max_epochs", 0], "trainer.max_epochs"),
    (["--trainer.max_epochs", -5], "trainer.max_epochs"),
    (["--trainer.max_steps", 0], "trainer.max_steps"),
    (["--trainer.log_every_n_steps", 0], "trainer.log_every_n_steps"),
    (["--trainer.limit_train_batches", 0], "trainer.limit_train_batches"),
    (["--trainer.accumulate_grad_batches", 0], "trainer.accumulate_grad_batches"),
    (["--checkpoint_every_n_steps", 0], "checkpoint_every_n_steps"),
    (["--threads", 0], "threads"),
    (["--data.init_args.batch_size", 0], "batch_size"),
    (["--seeds", 0, "--num_cpus", 0], "num_cpus"),
    (["--seeds", 0, "--max_concurrent", -1], "max_concurrent"),
    (["--trainer.devices", 0], "devices"),
])
def test_bad_values_fail_before_training_with_one_line(tmp_path, capsys, args, key):
    run_dir = tmp_path / "run"
    line = _one_error_line(["--recipe", TINY_RECIPE, "--run_dir", run_dir, "--experiment_dir", tmp_path / "exp",
                            *args], tmp_path, capsys)
    assert key in line
    assert not run_dir.exists() and not (tmp_path / "exp").exists()  # nothing written


def test_resume_with_a_recipe_that_changes_the_network_is_one_line(tmp_path, capsys):
    run_dir = _short_run(tmp_path, steps=5)
    line = _one_error_line(["--resume", run_dir, "--model.init_args.network", "{C: 8, N: 1, affine: false}"],
                           tmp_path, capsys)
    assert "change the network" in line and "network" in line


def test_wandb_without_login_is_one_line(tmp_path):
    env = {k: v for k, v in _env().items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"), NETRC=str(tmp_path / "netrc"))
    done = subprocess.run([sys.executable, "train.py", "--recipe", TINY_RECIPE, "--run_dir", tmp_path / "run",
                           "--loggers", "[csv,wandb]"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("train.py: error:")]
    assert len(errors) == 1 and "wandb login" in errors[0] and "WANDB_MODE=offline" in errors[0], done.stderr


# ---------------------------------------------------------------------------------------- error kinds
def test_programming_errors_keep_their_traceback(tmp_path, monkeypatch, capsys):
    from lightning_nas import cli
    from lightning_nas.errors import RecipeError

    def broken(self):
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr(cli.NASCLI, "fit", broken)
    with pytest.raises(ValueError, match="a bug"):
        run_train(["--recipe", TINY_RECIPE, "--run_dir", tmp_path / "a"], tmp_path)

    def wrapped(self):  # what jsonargparse does to an error inside a link or an instantiation
        try:
            raise RecipeError("data.batch_size must be >= 1, got 0")
        except RecipeError as error:
            raise ValueError("Call to compute_fn of link 'data' failed: ...") from error

    monkeypatch.setattr(cli.NASCLI, "fit", wrapped)
    line = _one_error_line(["--recipe", TINY_RECIPE, "--run_dir", tmp_path / "b"], tmp_path, capsys)
    assert line == "train.py: error: data.batch_size must be >= 1, got 0"


def test_help_lists_the_run_and_experiment_options(capsys):
    from lightning_nas.app import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for option in ("--resume RUN_DIR", "--reproduce RUN_DIR", "--seeds", "--grid", "--experiment_dir", "--ray_address",
                   "--num_cpus", "--gpus_per_trial", "--max_concurrent", "--threads", "--allow_thread_change",
                   "--checkpoint_every_n_steps", "--run_dir"):
        assert option in out, option


def test_no_private_option_parsing_and_no_import_cycle():
    sources = {p: p.read_text() for p in [ROOT / "lightning_nas" / "app.py", ROOT / "lightning_nas" / "cli.py",
                                          *(ROOT / "lightning_nas" / "run").glob("*.py"),
                                          *(ROOT / "lightning_nas" / "experiments").glob("*.py")]}
    assert not any("_take_option" in text for text in sources.values())
    assert not any("lightning_nas.app" in text for p, text in sources.items() if "experiments" in p.parts)
    assert not any("experiments.runner" in text for p, text in sources.items()
                   if p.name == "cli.py" or p.parent.name == "run")


# ---------------------------------------------------------------------------------------- outputs
def test_reproduction_goes_beside_an_experiment_not_into_it(tmp_path):
    from lightning_nas.run.reproduce import reproduction_directory

    experiment = tmp_path / "runs" / "experiments" / "bn"
    (experiment / "bn_mode=batch__seed0").mkdir(parents=True)
    (experiment / "experiment.json").write_text("{}")
    target = reproduction_directory(experiment / "bn_mode=batch__seed0")
    assert target == tmp_path / "runs" / "experiments" / "bn-reproduce" / "bn_mode=batch__seed0"
    assert reproduction_directory(tmp_path / "runs" / "q-seed0") == tmp_path / "runs" / "q-seed0-reproduce"


def test_summary_shows_ranking_quality_and_the_selected_architecture(tmp_path, capsys):
    from lightning_nas.run.summary import summarise

    (tmp_path / "metrics.csv").write_text(
        "epoch,ranking/kendall_tau,ranking/sparse_kendall_tau,step,train/loss\n"
        "9,0.41,0.52,99,\n9,,,100,1.0\n19,0.5012,0.6349,199,\n19,,,200,0.9\n")
    (tmp_path / "selection.json").write_text(json.dumps(
        {"architecture": "|a|", "ground_truth": 91.234, "rank": 42, "table_size": 500, "result": {"extra": 1}}))
    summarise(tmp_path)
    out = capsys.readouterr().out
    assert "Kendall tau 0.501" in out and "sparse Kendall tau 0.635" in out and "(epoch 20)" in out
    assert "selected:            |a|" in out and "91.23 (rank 42 of 500)" in out
