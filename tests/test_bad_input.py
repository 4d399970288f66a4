"""Bad input, the whole table (issue 18): every input error is one line on stderr naming the key, file or
value and what would be right, exit status 2, no traceback, and the run directory is left as it was
(absent, or unchanged byte for byte); clamps and substitutions are one notice line each; the
tabulation without a recipe says what it needs. Each case runs the real command in-process
(``lightning_nas.app.main``), except the tabulation, which runs as a subprocess (it must end quickly)."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT, TINY_RECIPE, run_train
from test_ptb import write_corpus
from test_train_integration import _env

PTB_RECIPE = """
seed_everything: 0
trainer: {{max_epochs: 1, accelerator: cpu, devices: 1, enable_progress_bar: false, enable_model_summary: false}}
model:
  class_path: lightning_nas.strategies.SPOS
  init_args:
    space: darts_rnn
    space_options: {{num_nodes: 2}}
    network: {{num_nodes: 2, embedding_size: 8, hidden_size: 8}}
data:
  class_path: lightning_nas.data.PTBDataModule
  init_args: {{data_dir: {data}, train_file: test.txt, val_file: valid.txt, test_file: null, batch_size: 4,
              eval_batch_size: 4, bptt: 5}}
ranking: {{num_architectures: 2, num_batches: 1, score: loss}}
selection: {{num_architectures: 2, num_batches: 1, top_k: 2, score: loss}}
"""
# A 64-cell NB201 sub-space, so that counts above it are cheap to score.
SMALL_SPACE = ["--model.init_args.space_options", "{operations: [skip_connect, nor_conv_3x3]}"]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a directory)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


# ------------------------------------------------------------------------------------ set-ups of the cases
def ptb(tmp: Path, corpus: str = "ok") -> list:
    data = tmp / "ptb"
    if corpus != "missing":
        write_corpus(data, lines=40, names=("test.txt", "valid.txt"))
    if corpus == "empty":
        (data / "test.txt").write_text("")
    if corpus == "binary":
        (data / "test.txt").write_bytes(random.Random(0).randbytes(4000))
    recipe = tmp / "ptb.yaml"
    recipe.write_text(PTB_RECIPE.format(data=data))
    return ["--recipe", recipe, "--run_dir", tmp / "run"]


def tiny(tmp: Path, *extra: object) -> list:
    return ["--recipe", TINY_RECIPE, "--run_dir", tmp / "run", *extra]


def recipe(tmp: Path, content: str | bytes) -> list:
    path = tmp / "recipe.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return ["--recipe", path, "--run_dir", tmp / "run"]


def file_as(tmp: Path, run_dir: str) -> list:
    (tmp / "afile").write_text("not a directory")
    return tiny(tmp)[:2] + ["--run_dir", tmp / run_dir]


def user_directory(tmp: Path, *extra: object) -> list:
    """A run directory the user made (holding a file of theirs): a failed start must leave it as it was."""
    (tmp / "run").mkdir()
    (tmp / "run" / "notes.txt").write_text("mine")
    return tiny(tmp, *extra)


def read_only_parent(tmp: Path, monkeypatch) -> list:
    """No write permission where the run directory would be created: chmod 555, and (as root, whom
    permissions do not stop) the same answer from ``os.access`` that an ordinary user gets."""
    parent = tmp / "read_only"
    parent.mkdir()
    parent.chmod(0o555)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == parent
                        else real_access(path, mode, **kw))
    return tiny(tmp)[:2] + ["--run_dir", parent / "run"]


def read_only_mount(tmp: Path, monkeypatch) -> list:
    """Permissions allow it but creating the directory fails (a read-only remount, root squashed on NFS)."""
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == tmp / "run":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    return tiny(tmp)


Case = Callable[..., list]
BAD_INPUTS: list[tuple[str, Case, list[str]]] = [
    # (id, the command, what the one error line must name)
    ("ptb missing folder", lambda t: ptb(t, "missing"), ["data.data_dir", "does not exist"]),
    ("ptb empty file", lambda t: ptb(t, "empty"), ["data.train_file", "test.txt", "holds no words"]),
    ("ptb binary file", lambda t: ptb(t, "binary"), ["data.train_file", "test.txt", "not UTF-8 text"]),
    ("ptb bptt 0", lambda t: ptb(t) + ["--data.init_args.bptt", 0], ["data.bptt", "positive integer", "0"]),
    ("ptb bptt negative", lambda t: ptb(t) + ["--data.init_args.bptt", -3], ["data.bptt", "-3"]),
    ("image_size 0", lambda t: tiny(t, "--data.init_args.image_size", 0), ["data.image_size", ">= 1", "got 0"]),
    ("eval_batch_size 0", lambda t: tiny(t, "--data.init_args.eval_batch_size", 0), ["data.eval_batch_size", "got 0"]),
    ("crop_padding negative", lambda t: tiny(t, "--data.init_args.crop_padding", -1), ["data.crop_padding", ">= 0"]),
    ("cutout negative", lambda t: tiny(t, "--data.init_args.cutout", -2), ["data.cutout", ">= 0", "-2"]),
    ("eval_batch_size negative", lambda t: tiny(t, "--data.init_args.eval_batch_size", -1), ["data.eval_batch_size"]),
    ("val_split 1.5", lambda t: tiny(t, "--data.init_args.val_split", 1.5), ["data.val_split", "1.5"]),
    ("val_split 0 with ranking", lambda t: tiny(t, "--data.init_args.val_split", 0), ["val split", "data.val_split"]),
    ("splits leave no training images", lambda t: tiny(t, "--data.init_args.val_split", 0.9,
                                                       "--data.init_args.arch_split", 0.2),
     ["data.val_split", "data.arch_split", "no training images"]),
    ("binary recipe", lambda t: ["--recipe", "/bin/ls", "--run_dir", t / "run"],
     ["recipe /bin/ls", "not a text file", "mapping of sections"]),
    ("random bytes as recipe", lambda t: recipe(t, random.Random(1).randbytes(3000)),
     ["recipe.yaml", "not a text file"]),
    ("empty recipe", lambda t: recipe(t, ""), ["recipe.yaml", "is empty", "mapping of sections (trainer, model"]),
    ("recipe is a list", lambda t: recipe(t, "- a\n- b\n"), ["recipe.yaml", "mapping of sections", "got a list"]),
    ("recipe is a scalar", lambda t: recipe(t, "hello\n"), ["recipe.yaml", "mapping of sections", "got a string"]),
    ("recipe is not YAML", lambda t: recipe(t, "trainer: [1, 2\n"), ["recipe.yaml", "not valid YAML", "line"]),
    ("renamed --model.init_args.lr", lambda t: tiny(t, "--model.init_args.lr", 0.1),
     ["model.init_args.lr was renamed", "--model.init_args.optimizer.lr"]),
    ("renamed key in a recipe", lambda t: ["--recipe", TINY_RECIPE, *recipe(t, "model: {init_args: {arch_lr: 0.1}}")],
     ["model.init_args.arch_lr was renamed", "model.init_args.architecture_optimizer.lr"]),
    ("unknown model option", lambda t: tiny(t, "--model.init_args.no_such_option", 1),
     ["model.init_args.no_such_option", "not an option"]),
    ("trainer.devices abc", lambda t: tiny(t, "--trainer.devices", "abc"), ["trainer.devices", "'abc'", ">= 1"]),
    ("trainer.accelerator unknown", lambda t: tiny(t, "--trainer.accelerator", "foo"), ["trainer.accelerator", "'foo'"]),
    ("trainer.strategy unknown", lambda t: tiny(t, "--trainer.strategy", "foo"), ["trainer.strategy", "'foo'", "ddp"]),
    ("negative gradient_clip_val", lambda t: tiny(t, "--trainer.gradient_clip_val", -1),
     ["trainer.gradient_clip_val", ">= 0", "-1"]),
    ("val_check_interval 0", lambda t: tiny(t, "--trainer.val_check_interval", 0), ["trainer.val_check_interval"]),
    ("seed out of range", lambda t: tiny(t, "--seed_everything", -1), ["seed_everything", "2**32 - 1", "-1"]),
    ("run_dir is a file", lambda t: file_as(t, "afile"), ["afile", "is a file", "--run_dir"]),
    ("run_dir inside a file", lambda t: file_as(t, "afile/run"), ["afile", "is a file", "cannot be created"]),
    ("run_dir empty", lambda t: tiny(t)[:2] + ["--run_dir", ""], ["run_dir is empty"]),
    ("read-only parent", read_only_parent, ["read_only", "no write permission", "--run_dir"]),
    ("read-only mount", read_only_mount, ["run", "cannot be written", "Permission denied"]),
    ("failure in a user's directory", lambda t: user_directory(t, "--data.init_args.image_size", 0),
     ["data.image_size"]),
    ("late failure in a user's directory", lambda t: user_directory(t, "--data.init_args.val_split", 0),
     ["data.val_split"]),
]


@pytest.mark.parametrize("make, expected", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(make, expected, tmp_path, capsys, monkeypatch):
    takes_monkeypatch = make in (read_only_parent, read_only_mount)
    args = make(tmp_path, monkeypatch) if takes_monkeypatch else make(tmp_path)
    capsys.readouterr()
    before = tree(tmp_path)
    assert run_train(args, tmp_path) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), err
    assert "Traceback" not in err
    for part in expected:
        assert part in lines[0], (part, lines[0])
    assert tree(tmp_path) == before  # nothing written: no run directory, or the user's one unchanged


def test_a_failed_resume_leaves_the_run_as_it_was(tmp_path, capsys):
    """A resume whose input fails after the lock and the run record were touched restores them."""
    run_dir = tmp_path / "run"
    assert run_train(tiny(tmp_path, "--trainer.max_steps", 5, "--ranking.num_architectures", 2,
                          "--selection.num_architectures", 2), tmp_path) == 0
    before = tree(run_dir)
    capsys.readouterr()
    assert run_train(["--resume", run_dir, "--data.init_args.val_split", 0], tmp_path) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "data.val_split" in lines[0], lines
    assert tree(run_dir) == before


def test_a_start_refused_by_the_lock_removes_nothing_of_the_running_command(tmp_path, capsys, monkeypatch):
    """Another command holds the run directory and writes into it while this one starts: when this one is
    refused by the lock, every file of the other one stays (only what a command creates after it took the
    lock is its own to remove)."""
    import fcntl

    from lightning_nas import cli

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("the other command's recipe")
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what the running train.py holds
    real_check = cli.NASCLI._check_validation_split

    def other_command_writes(self):  # the running command writes while this one is being built
        (run_dir / "metrics.csv").write_text("step\n1\n")
        return real_check(self)

    monkeypatch.setattr(cli.NASCLI, "_check_validation_split", other_command_writes)
    try:
        assert run_train(tiny(tmp_path), tmp_path) == 2
    finally:
        os.close(fd)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "in use by" in lines[0], lines
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "config.yaml", "metrics.csv"]


# ------------------------------------------------------------------------------------ notices
def test_clamps_and_substitutions_are_one_notice_line_each(tmp_path, capsys):
    args = tiny(tmp_path, *SMALL_SPACE, "--ranking.num_architectures", 1000, "--selection.num_architectures", 1000,
                "--selection.top_k", 100, "--trainer.precision", "16-mixed", "--trainer.max_steps", 2)
    assert run_train(args, tmp_path) == 0
    err = capsys.readouterr().err
    notices = [line for line in err.splitlines() if line.startswith("[lightning_nas] notice:")]
    expected = ["trainer.precision 16-mixed on CPU", "ranking.num_architectures=1000, but only 64",
                "selection.num_architectures=1000, but only 64", "selection.top_k=100, but there are only 64"]
    for part in expected:
        assert sum(part in line for line in notices) == 1, (part, err)
    assert len(notices) == len(expected), notices
    import yaml

    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["trainer"]["precision"] == "bf16-mixed"  # what ran is what is recorded


def test_ranking_top_k_above_the_ranked_architectures_is_a_notice(tmp_path, capsys):
    args = tiny(tmp_path, "--model.init_args.space_options", "{operations: [skip_connect, nor_conv_3x3, avg_pool_3x3]}",
                "--benchmark", "lightning_nas.benchmarks.TabulatedBenchmark",
                "--benchmark.init_args.path", "nb201_digits_729.csv", "--benchmark.init_args.metric", "test_accuracy_mean",
                "--ranking.num_architectures", 4, "--ranking.top_k", 10, "--selection.num_architectures", 4,
                "--trainer.max_steps", 2)
    assert run_train(args, tmp_path) == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[lightning_nas] notice:")]
    assert notices == ["[lightning_nas] notice: ranking.top_k=10, but only 4 architectures are ranked: "
                       "top10_ground_truth averages all 4"]


def test_renamed_keys_name_keys_that_exist():
    """Every new name in the table is an option of the strategies (a stale table would mislead)."""
    import dataclasses

    from lightning_nas.run.validation import RENAMED_KEYS
    from lightning_nas.strategies.settings import ArchitectureOptimizer, WeightOptimizer

    sections = {"optimizer": WeightOptimizer, "architecture_optimizer": ArchitectureOptimizer}
    for new in RENAMED_KEYS.values():
        for key in (word for word in new.split() if word.startswith("model.")):
            _, _, section, option = key.split(".")
            assert option in {f.name for f in dataclasses.fields(sections[section])}, key


# ------------------------------------------------------------------------------------ tabulation
def test_tabulate_without_a_recipe_says_what_it_needs():
    done = subprocess.run([sys.executable, "-m", "lightning_nas.tabulate"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "architectures is not set" in lines[0] and "--recipe" in lines[0]
    assert not (ROOT / "runs" / "tabulate" / "nb201.csv").exists()
