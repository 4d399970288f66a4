"""Training-step time of every strategy on the NAS-Bench-1Shot1 one-shot model, relative to SPOS.

    python benchmarks/nb101_1shot1_step_time.py [--search_space 3 --C 16 --stacks 1 --cells 1 --image 32 --batch 32 --steps 3]

Each strategy runs its real ``training_step`` in a Lightning Trainer on one fixed batch (also its
architecture batch), in this process, one after the other; the time is the median of ``steps``
steps after one warm-up step. Strategies the space cannot serve report their one-line reason.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from pytorch_lightning import Callback, Trainer

import lightning_nas.nn.nb1shot1  # noqa: F401  (registers the space and the network)
import lightning_nas.strategies as strategies
from lightning_nas.errors import UnsupportedCombinationError

STRATEGIES = {"SPOS": {}, "FairNAS": {}, "DARTS (1st order)": {"unrolled": False}, "DARTS (2nd order)": {"unrolled": True},
              "GDAS": {}, "PCDARTS": {}, "ENAS": {}}


def measure(label: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    cls = getattr(strategies, label.split(" ")[0])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.image, args.image, generator=gen)
    y = torch.randint(10, (args.batch,), generator=gen)
    try:
        model = cls(space="nb1shot1", space_options={"search_space": args.search_space},
                    network={"C": args.C, "num_stacks": args.stacks, "cells_per_stack": args.cells},
                    num_classes=10, in_channels=3, **STRATEGIES[label])
    except UnsupportedCombinationError as error:
        return {"label": label, "unsupported": str(error)}

    class Batches:
        def __len__(self) -> int:
            return args.steps + 1

        def __iter__(self):
            return iter([{"weights": (x, y), "arch": (x, y)}] * (args.steps + 1))

    class Timer(Callback):
        times: list[float] = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    timer.times = []
    Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0, limit_val_batches=0).fit(model, Batches())
    return {"label": label, "median_s": statistics.median(timer.times[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search_space", type=int, default=3)
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--stacks", type=int, default=1)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [measure(label, args) for label in STRATEGIES]
    spos = results[0]["median_s"]
    print(f"nb1shot1 search space {args.search_space}, C={args.C}, {args.stacks} stack(s) x {args.cells} cell(s), "
          f"batch {args.batch} x 3 x {args.image}^2, {args.threads} thread(s), median of {args.steps} steps")
    print("| strategy | step time (ms) | time / SPOS |")
    print("|---|---:|---:|")
    for r in results:
        if "unsupported" in r:
            print(f"| {r['label']} | unsupported: {r['unsupported']} | |")
        else:
            print(f"| {r['label']} | {1000 * r['median_s']:.1f} | {r['median_s'] / spos:.2f} |")


if __name__ == "__main__":
    main()
