"""Throughput of stand-alone (evaluation network) training on 2 DDP processes relative to 1 process,
at the same global batch size.

    python speed/ddp_throughput.py [--global_batch 64 --steps 12 --C 16 --layers 8 --image 32]

Both runs are ordinary ``train.py`` runs of ``recipes/darts_cnn_standalone.yaml`` (DARTS V2 cell) on
digits resized to 32x32 (no download), one thread per process: the 1-process run uses batch B,
the 2-process run (``--trainer.strategy ddp --trainer.devices 2``, gloo) B/2 per device. A callback
times every training step on rank 0; the first two steps (start-up, allocator warm-up) are
dropped. The ratio is images/second of the 2-process run over the 1-process run: 2.0 would be
perfect scaling; gradient all-reduce and the shared machine's load bring it down.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytorch_lightning import Callback

ROOT = Path(__file__).resolve().parent.parent


class StepTimer(Callback):
    """Writes the wall time of every training step (rank 0) to ``RUN_DIR/step_times.json``."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self.start)

    def on_train_end(self, trainer, module) -> None:
        if trainer.is_global_zero:
            (Path(trainer.default_root_dir) / "step_times.json").write_text(json.dumps(self.times))


def run(devices: int, args: argparse.Namespace, root: Path) -> float:
    """Images per second of one run."""
    per_device = args.global_batch // devices
    run_dir = root / f"devices{devices}"
    command = [sys.executable, "train.py", "--recipe", "recipes/darts_cnn_standalone.yaml", "--run_dir", str(run_dir),
               "--data.init_args.dataset", "digits", "--data.init_args.image_size", str(args.image),
               "--data.init_args.data_dir", str(root / "data"), "--data.init_args.val_split", "64",
               "--data.init_args.batch_size", str(per_device), "--data.init_args.cutout", "0",
               "--model.init_args.network.C", str(args.C), "--model.init_args.network.layers", str(args.layers),
               "--trainer.max_steps", str(args.steps),
               "--trainer.accelerator", "cpu", "--trainer.devices", str(devices),
               "--trainer.enable_progress_bar", "false", "--trainer.limit_val_batches", "0",
               "--ranking.num_architectures", "0", "--selection.num_architectures", "0",
               "--trainer.callbacks+=benchmarks.ddp_throughput.StepTimer", "--threads", "1"]
    if devices > 1:
        command += ["--trainer.strategy", "ddp"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), WANDB_MODE="offline")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{devices}-process run failed:\n{done.stderr[-3000:]}")
    times = json.loads((run_dir / "step_times.json").read_text())[2:]
    return args.global_batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--global_batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--image", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, args, Path(tmp))
        two = run(2, args, Path(tmp))
    print(f"DARTS V2 evaluation network C={args.C}, {args.layers} cells, {args.image}x{args.image}, global batch "
          f"{args.global_batch}, 1 thread per process (median step after 2 warm-up steps)")
    print(f"1 process: {one:.1f} images/s; 2 processes (DDP, gloo): {two:.1f} images/s; ratio {two / one:.2f}")


if __name__ == "__main__":
    main()
