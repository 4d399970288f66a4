"""What weight sharing costs per step, measured in one run (same batch, same threads).

(a) SPOS training step of the NB201 super-net (C=16, N=5; forward + backward + SGD step over *all*
    super-net parameters, as ``SearchStrategy`` configures it) divided by the training step of the
    stand-alone network of the same sampled architecture. Goal: <= 1.02.
(b) Scoring 200 architectures with ``lightning_nas.scoring.score`` (batch-statistics BN) divided by
    the bare forward time of the 200 stand-alone networks on the same batches. Goal: <= 1.1.

    OMP_NUM_THREADS=1 python speed/supernet_overhead.py [--threads 1] [--archs 20] [--score-archs 200]

Each architecture is timed as the median of ``--repeats`` after warm-up; the ratio is the sum over
architectures of those medians (super-net over stand-alone), with super-net and stand-alone runs
interleaved so that machine load affects both alike.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lightning_nas.nn.nb201 import NB201Network  # noqa: E402
from lightning_nas.scoring import score  # noqa: E402
from lightning_nas.seeding import generator  # noqa: E402
from lightning_nas.spaces import SPACES  # noqa: E402


def sgd(params) -> torch.optim.Optimizer:
    # the SearchStrategy defaults: lr 0.025, nesterov momentum 0.9, weight decay 5e-4
    return torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)


def interleaved(fns: dict, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, alternating between them, after ``warmup`` calls each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def train_step(net, optimizer, x, y, arch=None):
    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = net(x, arch) if arch is not None else net(x)
        F.cross_entropy(logits, y).backward()
        optimizer.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--score-archs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--score-batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    space = SPACES.get("nb201")()
    gen = generator(args.seed, "benchmark")
    x = torch.randn(args.batch_size, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen)
    supernet = NB201Network(num_classes=10, C=16, N=5)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}; torch {torch.__version__}; "
          f"threads {torch.get_num_threads()}; batch {args.batch_size}x3x32x32; NB201 C=16 N=5 "
          f"({sum(p.numel() for p in supernet.parameters()):,} super-net parameters)")

    # (a) training step ------------------------------------------------------------------------
    archs = space.sample_many(args.archs, generator(args.seed, "benchmark", "train"))
    super_opt = sgd(supernet.parameters())
    t_super, t_alone = [], []  # per architecture: median and minimum over repeats
    for arch in archs:
        alone = NB201Network(num_classes=10, C=16, N=5, arch=arch)
        steps = {"alone": train_step(alone, sgd(alone.parameters()), x, y),
                 "super": train_step(supernet, super_opt, x, y, arch)}
        times = interleaved(steps, args.repeats, args.warmup)
        t_alone.append(times["alone"])
        t_super.append(times["super"])
    for label, pick in (("median", statistics.median), ("minimum", min)):
        s_total = sum(pick(t) for t in t_super)
        a_total = sum(pick(t) for t in t_alone)
        print(f"(a) SPOS super-net step / stand-alone step over {len(archs)} archs ({label} of {args.repeats}): "
              f"{s_total / a_total:.3f} (super-net {1e3 * s_total / len(archs):.1f} ms, stand-alone "
              f"{1e3 * a_total / len(archs):.1f} ms per step; goal <= 1.02)")

    # (b) scoring --------------------------------------------------------------------------------
    batches = [(torch.randn(args.batch_size, 3, 32, 32, generator=gen), torch.randint(0, 10, (args.batch_size,), generator=gen))
               for _ in range(args.score_batches)]
    score_archs = space.sample_many(args.score_archs, generator(args.seed, "benchmark", "score"))
    nets = [NB201Network(num_classes=10, C=16, N=5, arch=a) for a in score_archs]

    @torch.no_grad()
    def bare():
        for net in nets:
            net.train()  # batch statistics, as the scored super-net uses
            for xb, _ in batches:
                net(xb)

    def scored():
        for arch in score_archs:
            score(supernet, lambda h, a=arch: supernet(h, a), batches, "batch")

    bare(), scored()  # warm-up
    times = interleaved({"bare": bare, "score": scored}, max(3, args.repeats // 2), 0)
    for label, pick in (("median", statistics.median), ("minimum", min)):
        ratio = pick(times["score"]) / pick(times["bare"])
        print(f"(b) score() of {len(score_archs)} archs / bare stand-alone forward ({label}): {ratio:.3f} "
              f"(score {pick(times['score']):.2f} s, bare {pick(times['bare']):.2f} s on {len(batches)} "
              f"batches of {args.batch_size}; goal <= 1.1)")

if __name__ == "__main__":
    main()
