"""The relaxed training step of this version against another version's network file (``nn/nb201.py``
or ``nn/darts_cnn.py``), interleaved in one process (same weights, same batch): operators per step
and the time ratio.

    OMP_NUM_THREADS=1 python speed/relaxed_before_after.py --before OLD/lightning_nas/nn/nb201.py \\
        [--C 16 --N 1 --batch 64 --image 32 --rounds 5 --threads 1]
    OMP_NUM_THREADS=1 python speed/relaxed_before_after.py --space darts_cnn \\
        --before OLD/lightning_nas/nn/darts_cnn.py --C 16 --layers 8 --batch 16

One step: softmax of the architecture logits, ``forward_weighted`` on the batch, cross-entropy,
backward into weights and alphas, an SGD step on the weights: DARTS (first order's weight half) and
PC-DARTS (K = 4, edge weights). Each round runs every side once, in rotating order; the ratio is
the median over rounds of this version's time over the other's. Times are the process's CPU time
(``time.process_time``: on a machine shared with other jobs, time spent waiting for a core is not
counted; with several threads it sums them).
Operators are counted with ``strategy_step_time.kernel_counter`` (views excluded).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "speed"))

from lightning_nas.nn.darts_cnn import DartsCNNNetwork  # noqa: E402
from lightning_nas.nn.nb201 import NB201Network  # noqa: E402
from strategy_step_time import kernel_counter  # noqa: E402
from versions import load_unregistered  # noqa: E402


NETWORKS = {"nb201": NB201Network, "darts_cnn": DartsCNNNetwork}


def load_before(path: Path, space: str):
    """The network class of another version of its file, without registering it twice."""
    return load_unregistered(path, f"{space}_before", NETWORKS[space].__name__)


def make_step(net, k: int, x: torch.Tensor, y: torch.Tensor):
    gen = torch.Generator().manual_seed(1)
    groups = [g for g in net.space.relaxation if k > 1 or not g.edge_normalisation]
    logits = {g.name: (1e-3 * torch.randn(g.shape, generator=gen)).requires_grad_() for g in groups}
    sgd = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)

    def step() -> None:
        sgd.zero_grad()
        weights = {g.name: g.normalise(logits[g.name]) for g in groups}
        F.cross_entropy(net.forward_weighted(x, weights), y).backward()
        sgd.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="another version's network file")
    parser.add_argument("--space", choices=sorted(NETWORKS), default="nb201")
    parser.add_argument("--layers", type=int, default=8, help="darts_cnn: cells")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    before_cls = load_before(args.before, args.space)
    after_cls = NETWORKS[args.space]
    options = ({"C": args.C, "N": args.N, "affine": False} if args.space == "nb201"
               else {"C": args.C, "layers": args.layers})
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.image, args.image, generator=gen)
    y = torch.randint(10, (args.batch,), generator=gen)
    print(f"{args.space} super-net {options}, batch {args.batch} x 3 x {args.image}^2, "
          f"{args.threads} thread(s), {args.rounds} interleaved rounds; torch {torch.__version__}")
    print("| relaxed step | operators before | operators after | CPU time after / before (median of rounds) |")
    print("|---|---:|---:|---:|")
    for label, k in (("DARTS", 1), ("PC-DARTS (K=4)", 4)):
        torch.manual_seed(0)
        after = after_cls(**options, partial_channels=k)
        torch.manual_seed(0)
        before = before_cls(**options, partial_channels=k)
        before.load_state_dict(after.state_dict())
        steps = {"after": make_step(after, k, x, y), "before": make_step(before, k, x, y)}
        counts = {}
        for name, step in steps.items():
            step()
            counter = kernel_counter()
            with counter:
                step()
            counts[name] = counter.count
        times: dict[str, list[float]] = {name: [] for name in steps}
        for r in range(args.rounds):
            for name in (("after", "before") if r % 2 == 0 else ("before", "after")):
                start = time.process_time()
                steps[name]()
                times[name].append(time.process_time() - start)
        ratio = statistics.median(a / b for a, b in zip(times["after"], times["before"], strict=True))
        print(f"| {label} | {counts['before']:,} | {counts['after']:,} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
