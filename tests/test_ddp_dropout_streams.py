"""Dropout under DDP (2 CPU processes, gloo): every process draws its own masks from a stream derived
from (seed, rank), the processes still sample the same architectures, and a run killed mid-epoch
resumes bit for bit on every process (each process's stream and carried hidden states are in the
checkpoint, gathered to rank 0)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_nas.nn.darts_rnn import DartsRNNNetwork
from lightning_nas.seeding import derive_seed, rank_seed
from test_ptb import write_corpus
from test_train_integration import PROBE, train

RECIPE = """
seed_everything: 0
trainer:
  max_epochs: 2
  accelerator: cpu
  devices: 2
  strategy: ddp
  enable_progress_bar: false
  enable_model_summary: false
  log_every_n_steps: 1
model:
  class_path: lightning_nas.strategies.SPOS
  init_args:
    space: darts_rnn
    space_options: {{num_nodes: 2}}
    network: {{embedding_size: 8, hidden_size: 8, dropout: 0.5, dropout_h: 0.25, dropout_x: 0.5,
              dropout_input: 0.2, dropout_embedding: 0.1}}
    optimizer: {{lr: 2.0, momentum: 0.0, nesterov: false, weight_decay: 1.0e-6, schedule: constant, grad_clip: 0.25}}
data:
  class_path: lightning_nas.data.PTBDataModule
  init_args: {{data_dir: {data}, train_file: test.txt, val_file: valid.txt, test_file: null, batch_size: 4,
              eval_batch_size: 4, bptt: 6, bptt_mode: stateful}}
ranking: {{num_architectures: 0}}
selection: {{num_architectures: 2, num_batches: 1, top_k: 1}}
checkpoint_every_n_steps: 4
"""
KILL_AT = 7  # mid-epoch 1 (about 9 steps per epoch), the last checkpoint at step 4


def _records(run: Path, name: str, rank: int) -> dict[int, object]:
    lines = (run / "probe" / f"{name}_rank{rank}.jsonl").read_text().splitlines()
    return {step: value for step, value in map(json.loads, lines)}  # a resumed run's records replace the lost ones


def _assert_equal(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_rank_streams_are_derived_from_seed_and_rank():
    assert rank_seed(123, 0) == 123 and rank_seed(123, 1) == derive_seed(123, "rank", 1) != rank_seed(123, 2)
    nets = [DartsRNNNetwork(num_classes=5, embedding_size=4, hidden_size=4, dropout_x=0.5, seed=3) for _ in range(2)]
    nets[1].seed_rank_stream(1)
    nets[0].seed_rank_stream(0)  # rank 0 keeps the network's own stream: one process draws what it drew
    assert torch.equal(nets[0].noise_state(), torch.Generator().manual_seed(3).get_state())
    assert not torch.equal(nets[0].noise_state(), nets[1].noise_state())


@pytest.mark.slow
def test_ranks_draw_their_own_masks_and_a_killed_run_resumes_on_every_rank(tmp_path):
    data = write_corpus(tmp_path / "ptb", lines=60, names=("test.txt", "valid.txt"))
    recipe = tmp_path / "rnn.yaml"
    recipe.write_text(RECIPE.format(data=data))
    args = lambda run: ["--recipe", recipe, "--run_dir", run, *PROBE]  # noqa: E731
    whole = train(args(tmp_path / "whole"), timeout=900, LNAS_PROBE_NOISE="1")
    assert whole.returncode == 0, whole.stderr[-3000:]
    noise = [_records(tmp_path / "whole", "noise", r) for r in (0, 1)]
    assert len(noise[0]) > KILL_AT + 4 and noise[0].keys() == noise[1].keys()
    assert all(noise[0][step] != noise[1][step] for step in noise[0])  # every step: other masks per rank
    assert _records(tmp_path / "whole", "archs", 0) == _records(tmp_path / "whole", "archs", 1)

    killed = train(args(tmp_path / "killed"), timeout=900, LNAS_PROBE_NOISE="1", LNAS_PROBE_KILL_AT_STEP=str(KILL_AT))
    assert killed.returncode != 0
    checkpoint = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert len(checkpoint["rank_states"]) == 2 and checkpoint["global_step"] < KILL_AT
    assert not torch.equal(checkpoint["rank_states"][0]["dropout_generator"], checkpoint["rank_states"][1]["dropout_generator"])
    resumed = train(["--resume", tmp_path / "killed"], timeout=900, LNAS_PROBE_NOISE="1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in (0, 1):
        a = torch.load(tmp_path / "whole" / "probe" / f"final_rank{rank}.pt", weights_only=False)
        b = torch.load(tmp_path / "killed" / "probe" / f"final_rank{rank}.pt", weights_only=False)
        _assert_equal(a["state_dict"], b["state_dict"], f"rank {rank} state_dict")  # stream, carried states included
        _assert_equal(a["optimizer"], b["optimizer"], f"rank {rank} optimizer")
        assert a["global_step"] == b["global_step"]
        assert _records(tmp_path / "whole", "noise", rank) == _records(tmp_path / "killed", "noise", rank)
        assert _records(tmp_path / "whole", "archs", rank) == _records(tmp_path / "killed", "archs", rank)
