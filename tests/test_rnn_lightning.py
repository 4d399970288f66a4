"""The whole stateful protocol under Lightning with the project's own ``Standalone`` strategy: carried
hidden state (training and validation), AR/TAR in the loss, AWD-LSTM's per-window learning rate
(``WindowLearningRate``) and SGD -> ASGD (``AveragedSGD``), all dropouts on. A run stopped mid-epoch and resumed from its checkpoint logs the same losses as an
uninterrupted one."""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from conftest import run_train
from test_ptb import write_corpus


RECIPE = """
seed_everything: 0
trainer:
  max_epochs: 4
  accelerator: cpu
  devices: 1
  enable_progress_bar: false
  enable_model_summary: false
  log_every_n_steps: 1
  gradient_clip_val: 0.25
  callbacks:
    - class_path: callbacks.asgd.AveragedSGD
      init_args: {{nonmono: 1}}
    - class_path: callbacks.asgd.WindowLearningRate
model:
  class_path: lightning_nas.strategies.Standalone
  init_args:
    architecture: sigmoid~0|relu~1
    space: darts_rnn
    space_options: {{num_nodes: 2}}
    network: {{embedding_size: 8, hidden_size: 8, dropout: 0.5, dropout_h: 0.25, dropout_x: 0.5,
              dropout_input: 0.2, dropout_embedding: 0.1, ar: 1.0, tar: 1.0}}
    optimizer: {{lr: 2.0, momentum: 0.0, nesterov: false, weight_decay: 1.0e-6, schedule: constant}}
data:
  class_path: lightning_nas.data.PTBDataModule
  init_args: {{data_dir: {data}, train_file: test.txt, val_file: valid.txt, test_file: valid.txt, batch_size: 4,
              eval_batch_size: 4, bptt: 6, bptt_mode: stateful}}
ranking: {{num_architectures: 0}}
selection: {{num_architectures: 0}}
checkpoint_every_n_steps: 7
"""


def metrics(run: Path) -> tuple[dict[int, str], list[str]]:
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    train = {int(r["step"]): r["train/loss_step"] for r in rows if r.get("train/loss_step")}
    val = [r["val/loss"] for r in rows if r.get("val/loss")]
    assert any(r.get("asgd/active") == "1.0" for r in rows)  # the switch to averaging happened
    return train, val


def test_stateful_standalone_with_asgd_resumes_exactly_under_lightning(tmp_path: Path) -> None:
    data = write_corpus(tmp_path / "ptb", lines=60, names=("test.txt", "valid.txt"))
    recipe = tmp_path / "rnn.yaml"
    recipe.write_text(RECIPE.format(data=data))
    assert run_train(["--recipe", recipe, "--run_dir", tmp_path / "a"], cwd=tmp_path) == 0
    reference, reference_val = metrics(tmp_path / "a")
    steps = max(reference)
    stop = steps // 2 + 3  # mid-epoch, after the switch to averaging
    stop += 1 if stop % 7 == 0 else 0
    assert run_train(["--recipe", recipe, "--run_dir", tmp_path / "b", "--trainer.max_steps", str(stop)],
                     cwd=tmp_path) == 0
    # kill -9 after the last periodic checkpoint: drop whatever was saved after it
    checkpoints = tmp_path / "b" / "checkpoints"
    if (checkpoints / "last.prev.ckpt").is_file() and stop % 7:
        (checkpoints / "last.prev.ckpt").replace(checkpoints / "last.ckpt")
    assert run_train(["--resume", tmp_path / "b", "--trainer.max_steps", "-1"], cwd=tmp_path) == 0
    resumed, resumed_val = metrics(tmp_path / "b")
    assert len(reference) > 20 and resumed == reference
    assert resumed_val[-1] == reference_val[-1]
    checkpoint = torch.load(next((tmp_path / "b").rglob("last.ckpt"), None) or next((tmp_path / "b").rglob("*.ckpt")),
                            weights_only=False)
    extra = checkpoint["state_dict"]["supernet._extra_state"]
    assert "weights" in extra["hidden"] and "dropout_generator" in extra
