"""Every search strategy under Lightning's DDP on 2 CPU processes (gloo): ranks read disjoint data,
sample the same architectures, hold identical weights, architecture parameters and controller at
the end, and the checkpoint rank 0 wrote loads into a one-process strategy that computes the same
function. The failure this guards against is a known one elsewhere: DARTS under DDP ending with a
different architecture on every rank."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_nas.registry import STRATEGIES
from test_strategies import strategy_arguments
from test_train_integration import DDP, tiny, train

#: every registered strategy that trains (the DDP promise is about what training changes)
TRAINING = [name for name in STRATEGIES.names() if STRATEGIES.get(name).trains]
SHORT = ["--trainer.limit_train_batches", "4", "--trainer.max_epochs", "1"]


def _records(run_dir: Path, name: str, rank: int) -> list:
    path = run_dir / "probe" / f"{name}_rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
@pytest.mark.parametrize("strategy", TRAINING)
def test_ddp_ranks_agree_for_every_strategy(strategy, tmp_path):
    run_dir = tmp_path / strategy
    done = train(strategy_arguments(strategy) + ["--run_dir", run_dir, *DDP, *SHORT], timeout=900, LNAS_PROBE_BATCHES="1")
    assert done.returncode == 0, done.stderr[-4000:]
    finals = [torch.load(run_dir / "probe" / f"final_rank{r}.pt", weights_only=False) for r in (0, 1)]
    # identical parameters on both ranks (weights, alpha/beta, the ENAS controller); BN running
    # statistics are per-rank buffers, so only parameters are compared
    names = [n for n in finals[0]["has_grad"]]
    assert names
    for name in names:
        assert torch.equal(finals[0]["state_dict"][name], finals[1]["state_dict"][name]), f"{name} differs across ranks"
    # the architecture parameters (alpha/beta, a controller) are among the parameters compared
    single = STRATEGIES.get(strategy).load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt", map_location="cpu")
    learned = {id(p) for p in single.architecture_parameters()}
    assert {n for n, p in single.named_parameters() if id(p) in learned} <= set(names)
    # the same architecture sequence (single-path strategies, ENAS) and the same GDAS samples
    assert _records(run_dir, "archs", 0) == _records(run_dir, "archs", 1)
    batches = [_records(run_dir, "batches", r) for r in (0, 1)]
    assert len(batches[0]) == len(batches[1]) >= 4
    assert [b[2] for b in batches[0]] == [b[2] for b in batches[1]]  # GDAS' sampled indices ({} otherwise)
    # disjoint data: the two ranks never train on the same batch
    assert all(a[1] != b[1] for a, b in zip(*batches, strict=True))
    # rank 0 wrote the only checkpoint; it loads into a one-process strategy computing the same function
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert set(single.state_dict()) == set(checkpoint["state_dict"])
    for key, value in single.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][key]), key


@pytest.mark.slow
def test_killed_ddp_run_resumes_bit_identically_and_on_one_process(tmp_path):
    """SIGKILL of both ranks mid-epoch, then ``--resume`` on 2 processes, equals the uninterrupted
    2-process run; the same checkpoint also resumes on 1 process (the data position maps to the
    samples already seen; the global batch then halves, so only the first steps can be compared)."""
    from test_train_integration import Outcome, assert_same_outcome

    args = lambda run: tiny(run, *DDP, "--checkpoint_every_n_steps", 5, epochs=1)  # noqa: E731
    whole = train(args(tmp_path / "whole"), timeout=900)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = train(args(tmp_path / "killed"), timeout=900, LNAS_PROBE_KILL_AT_STEP="11")
    assert killed.returncode != 0
    (tmp_path / "one").mkdir()
    for item in (tmp_path / "killed").iterdir():  # a copy resumed on one process
        if item.is_dir():
            import shutil

            shutil.copytree(item, tmp_path / "one" / item.name)
        elif item.name != ".lock":
            (tmp_path / "one" / item.name).write_bytes(item.read_bytes())
    resumed = train(["--resume", tmp_path / "killed"], timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_outcome(Outcome(tmp_path / "whole"), Outcome(tmp_path / "killed"))
    single = train(["--resume", tmp_path / "one", "--trainer.devices", "1", "--trainer.strategy", "auto"], timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    assert "resuming a checkpoint of 2 process(es) on 1" in single.stderr
    one = Outcome(tmp_path / "one")
    assert one.final["global_step"] > 10
    assert {s: a for s, a in one.archs.items() if s <= 10} == {s: a for s, a in Outcome(tmp_path / "whole").archs.items() if s <= 10}
