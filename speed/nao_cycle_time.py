"""What one NAO-WS cycle costs, and what it adds to every training step on average.

    python speed/nao_cycle_time.py [--C 16 --N 1 --image 32 --batch 64 --threads 1]
        [--epd_epochs 5] [--steps_per_cycle 11730]

A NAO step between cycles is a SPOS step on a pool member (``speed/strategy_step_time.py`` times it).
Every ``cycle_every`` epochs the strategy scores its pool with the shared weights, trains the
encoder-predictor-decoder and decodes new architectures (``NAO.cycle``). This script times those
three parts with the strategy's defaults (the authors': a pool of 600 scored on one batch each, 1000
epochs of batch 100, the top 100 moved until 300 new are decoded) on a fixed batch: the encoder-predictor-
decoder's training is timed over ``--epd_epochs`` epochs and scaled to its 1000 (every epoch does the
same work). The amortised overhead divides the cycle by the training steps between two cycles
(default: 30 epochs of CIFAR-10's 25,000 weight-split images in batches of 64, the authors' schedule).
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epd_epochs", type=int, default=5, help="epochs timed (scaled to the strategy's own)")
    parser.add_argument("--steps_per_cycle", type=int, default=30 * (25000 // 64 + 1))
    args = parser.parse_args()

    import torch

    from lightning_nas.strategies.nao import NAO, normalised

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    network = {"C": args.C, "N": args.N, "affine": False} if args.space == "nb201" else {}
    strategy = NAO(space=args.space, network=network, num_classes=10, in_channels=3)
    batches = [(torch.randn(args.batch, 3, args.image, args.image, generator=gen), torch.randint(10, (args.batch,), generator=gen))]
    from lightning_nas.scoring import score_architectures

    start = time.perf_counter()
    scores = score_architectures(strategy, [strategy.space.from_decisions(p) for p in strategy.pool], batches)
    scoring = time.perf_counter() - start
    targets = normalised([s.accuracy for s in scores])
    full_epochs, strategy.epd_epochs = strategy.epd_epochs, args.epd_epochs
    start = time.perf_counter()
    strategy.train_epd(strategy.pool, targets)
    epd = (time.perf_counter() - start) / args.epd_epochs * full_epochs
    start = time.perf_counter()
    new = strategy.propose(strategy.pool[:strategy.top_architectures], strategy.new_architectures)
    propose = time.perf_counter() - start
    cycle = scoring + epd + propose
    print(f"{args.space} super-net {network}, batch {args.batch} x 3 x {args.image}^2, {args.threads} thread(s); "
          f"pool {len(strategy.pool)}, {full_epochs} encoder-predictor-decoder epochs (timed over {args.epd_epochs})")
    print(f"| part | seconds |\n|---|---:|\n| score the pool | {scoring:.1f} |\n| train the encoder-predictor-decoder "
          f"| {epd:.1f} |\n| decode {len(new)} new | {propose:.1f} |\n| cycle | {cycle:.1f} |")
    print(f"amortised over {args.steps_per_cycle} steps per cycle: {1000 * cycle / args.steps_per_cycle:.1f} ms per step")


if __name__ == "__main__":
    main()
