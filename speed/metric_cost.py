"""Step-time cost of computing the training accuracy with torchmetrics instead of plain counting.

    OMP_NUM_THREADS=1 python speed/metric_cost.py [--reps 30 --steps 10 --threads 1]

The quickstart's SPOS super-net (NB201 over {skip_connect, nor_conv_3x3, avg_pool_3x3}, C=8, N=1,
affine=False, 8x8 noisy digits, batch 64): one training step is a uniformly sampled path's forward,
the cross-entropy, the batch accuracy, backward and an SGD step. The two variants differ only in the
accuracy: ``plain`` is what ``SearchStrategy.classification_step`` computes
(``(logits.argmax(-1) == y).float().mean() * 100``), ``torchmetrics`` is
``torchmetrics.functional.classification.multiclass_accuracy(..., average="micro") * 100`` (same value;
its argument checks on, the library default). The bare step (no Lightning loop around it) is timed, so
the ratio is an upper bound of the cost in a real run. Both variants run in one process, interleaved
(``steps`` steps of one, then of the other, order alternating), ``reps`` times; the cost is the median
over repetitions of the paired ratio (torchmetrics block time / plain block time of the same
repetition), with its quartiles; the ratio of the two median step times is printed too. On a loaded
machine those whole-step ratios are noisy, so the metric calls are also timed alone (200 calls per
block, interleaved the same way): their difference over the plain step time is the added share.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def plain(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == y).float().mean() * 100


def with_torchmetrics(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.classification import multiclass_accuracy

    return multiclass_accuracy(logits, y, num_classes=logits.shape[-1], average="micro") * 100


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from lightning_nas.data import ImageDataModule
    from lightning_nas.strategies import SPOS

    data = ImageDataModule(dataset="digits_noisy", image_size=8, batch_size=64, val_split=0.25, crop_padding=1,
                           horizontal_flip=False)
    data.setup()
    index = data.splits["weights"][:64]
    x, y = data.data.train_images[index].float(), data.data.train_labels[index]
    model = SPOS(space="nb201", space_options={"operations": ["skip_connect", "nor_conv_3x3", "avg_pool_3x3"]},
                 network={"C": 8, "N": 1, "affine": False}, num_classes=data.num_classes, in_channels=data.in_channels)
    optimizer, _ = model.weight_optimizer()
    variants = {"plain": plain, "torchmetrics": with_torchmetrics}
    with torch.no_grad():
        logits = model.supernet(x, model.sample_architecture())
    if abs(float(plain(logits, y)) - float(with_torchmetrics(logits, y))) > 1e-4:
        raise AssertionError("the two accuracies differ: the comparison would not be like for like")

    def step(accuracy) -> None:
        logits = model.supernet(x, model.sample_architecture())
        loss = F.cross_entropy(logits, y)
        accuracy(logits.detach(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for fn in variants.values():  # warm-up (imports, allocator)
        for _ in range(3):
            step(fn)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(args.reps):
        order = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for name in order:
            start = time.perf_counter()
            for _ in range(args.steps):
                step(variants[name])
            times[name].append((time.perf_counter() - start) / args.steps)
    medians = {name: statistics.median(values) for name, values in times.items()}
    # each repetition's two blocks ran back to back: their ratio cancels load that drifts slowly
    paired = sorted(t / p for t, p in zip(times["torchmetrics"], times["plain"], strict=True))
    quartiles = statistics.quantiles(paired, n=4)
    # the metric alone, on one step's logits: short calls, timed many times, so the difference is
    # resolved even where the whole step's time is noisy; divided by the step time it is the added share
    logits = model.supernet(x, model.sample_architecture()).detach()
    calls = {name: [] for name in variants}
    for rep in range(args.reps):
        for name in (list(variants) if rep % 2 == 0 else list(reversed(variants))):
            start = time.perf_counter()
            for _ in range(200):
                variants[name](logits, y)
            calls[name].append((time.perf_counter() - start) / 200)
    call = {name: statistics.median(values) for name, values in calls.items()}
    report = {"threads": args.threads, "reps": args.reps, "steps": args.steps, "median_step_s": medians,
              "metric_call_s": call, "added_share_of_step": (call["torchmetrics"] - call["plain"]) / medians["plain"],
              "ratio_of_medians": medians["torchmetrics"] / medians["plain"],
              "paired_ratio_median": statistics.median(paired),
              "paired_ratio_quartiles": [quartiles[0], quartiles[2]]}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
