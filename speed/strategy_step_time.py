"""Training-step time of every search strategy relative to SPOS, its kernel count and peak memory.

    python speed/strategy_step_time.py [--space nb201] [--C 16 --N 1 --image 32 --batch 64 --steps 5 --threads 1]
    python speed/strategy_step_time.py --space darts_rnn [--hidden 300 --bptt 35 --vocab 10000]
    python speed/strategy_step_time.py --space nb1shot1 --space_options '{"search_space": 3}' --network '{"num_stacks": 1, "cells_per_stack": 1}'
    python speed/strategy_step_time.py --space darts_cnn --batch 16
    python speed/strategy_step_time.py ... --record results/speed/operators.json   # the shipped record

On a GPU these small super-nets are dominated by kernel-launch overhead, so besides wall time the
benchmark counts the operators one training step dispatches (forward, backward and optimiser,
counted with a ``TorchDispatchMode``; view and metadata operators, which launch nothing, are left
out). That count is the proxy for GPU launches this CPU-only machine can measure exactly.

Every strategy runs its real ``training_step`` inside a Lightning Trainer (manual optimisation,
clipping and all) on the same fixed batch, which is also its architecture batch. Each strategy runs
in a fresh subprocess so that memory figures do not mix: on CPU the reported memory is the peak
resident set size (``resource.getrusage().ru_maxrss``) minus the resident set size just before
training starts, i.e. the extra memory the training steps needed (activations, graphs, optimiser
state), not the model itself. On CUDA it is ``torch.cuda.max_memory_allocated`` over the steps.
The time is the median wall time of ``steps`` steps after one warm-up step; ratios are taken to the
SPOS median of the same run.

``--record FILE`` also writes the run into a JSON record (one entry per space, replacing that space's
previous entry): the operator and matrix-product counts, which are exact and the same on every run of
one commit and torch build, and the times with what they depend on (CPU, threads, load average before
and after, the shapes). ``python -m lightning_nas.results render`` turns it into docs/benchmarks.md's
tables (``lightning_nas.results.speed``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = {
    "SPOS": {},
    "FairNAS": {},
    "DARTS (1st order)": {"unrolled": False},
    "DARTS (2nd order)": {"unrolled": True},
    "GDAS": {},
    "PC-DARTS (K=4)": {"architecture_optimizer": {"warmup_epochs": 0}},
    "ENAS": {},
    "NAO": {},  # a step between cycles (a uniform pool member); speed/nao_cycle_time.py times the cycles
    "BayesNAS": {"warmup_epochs": 0},  # its search phase: switches, penalty and curvature statistics
}


MATRIX_PRODUCTS = ("mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "dot", "mv", "addmv", "linear")


def kernel_counter():
    """A ``TorchDispatchMode`` counting the operators that compute something (views and aliases
    launch no kernel) in ``count``, and the matrix products among them in ``products``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class KernelCount(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.count = self.products = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split(".")[0]
            if not func.is_view and name not in ("detach", "alias", "lift_fresh"):
                self.count += 1
                self.products += name in MATRIX_PRODUCTS
            return func(*args, **(kwargs or {}))

    return KernelCount()


def _class(label: str) -> str:
    return {"DARTS": "DARTS", "PC-DARTS": "PCDARTS"}.get(label.split(" ")[0], label.split(" ")[0])


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def network_options(args: argparse.Namespace) -> dict:
    """The image network's options: ``--C``/``--N`` for NB201, then ``--network`` on top."""
    options = {"C": args.C, "N": args.N, "affine": False} if args.space == "nb201" else {}
    return {**options, **json.loads(args.network)}


def measure(label: str, args: argparse.Namespace) -> dict:
    import torch
    from pytorch_lightning import Callback, Trainer

    import lightning_nas.strategies as strategies

    from lightning_nas.errors import UnsupportedCombinationError
    from lightning_nas.strategies.settings import ArchitectureOptimizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cls = getattr(strategies, _class(label), None) or strategies.STRATEGIES.get(_class(label).lower())
    options = dict(STRATEGIES[label])
    if "architecture_optimizer" in options:
        from lightning_nas.strategies.pcdarts import PCDARTS_ARCHITECTURE  # its defaults, without warm-up

        options["architecture_optimizer"] = ArchitectureOptimizer(**{**PCDARTS_ARCHITECTURE.__dict__, **options["architecture_optimizer"]})
    gen = torch.Generator().manual_seed(0)
    if args.space == "darts_rnn":
        network = {"embedding_size": args.hidden, "hidden_size": args.hidden}
        classes, in_channels = args.vocab, 1
        x = torch.randint(args.vocab, (args.batch, args.bptt), generator=gen)
        y = torch.randint(args.vocab, (args.batch * args.bptt,), generator=gen)
    else:
        network = network_options(args)
        classes, in_channels = 10, 3
        x = torch.randn(args.batch, 3, args.image, args.image, generator=gen)
        y = torch.randint(10, (args.batch,), generator=gen)
    try:
        model = cls(space=args.space, space_options=json.loads(args.space_options), network=network, num_classes=classes, in_channels=in_channels, **options)
    except UnsupportedCombinationError as error:
        return {"label": label, "unsupported": str(error)}

    class SameBatch:  # an iterable, not a list: Lightning reads a list as several dataloaders
        def __len__(self) -> int:
            return args.steps + 2

        def __iter__(self):
            return iter([{"weights": (x, y), "arch": (x, y)}] * (args.steps + 2))

    batches = SameBatch()
    cuda = torch.cuda.is_available()

    class Timer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.kernels = self.products = 0
            self.mode = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if batch_idx == 1:  # one counted step after the warm-up step, then the timed ones
                self.mode = kernel_counter()
                self.mode.__enter__()
                return
            if cuda:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if self.mode is not None:
                self.mode.__exit__(None, None, None)
                self.kernels, self.products, self.mode = self.mode.count, self.mode.products, None
                return
            if cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    trainer = Trainer(max_epochs=1, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                      num_sanity_val_steps=0, limit_val_batches=0)
    rss_before = _rss_bytes()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, train_dataloaders=batches)
    if cuda:
        memory, how = torch.cuda.max_memory_allocated(), "cuda max_memory_allocated"
    else:
        memory, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before, "peak RSS - RSS before fit"
    return {"label": label, "median_s": statistics.median(timer.times[1:]), "memory_bytes": memory, "memory": how,
            "kernels": timer.kernels, "products": timer.products}


def environment(record: Path | None = None) -> dict:
    """What the counts (torch build, commit) and the times (CPU, threads, load) depend on. The record
    being written is this command's output, not a change of the code (one space after another)."""
    import platform

    import torch

    from lightning_nas.run_record import cpu_kind, git_state

    git = git_state(ROOT, outputs=(record,) if record is not None else ())
    return {"torch": torch.__version__, "python": platform.python_version(), "commit": git.get("commit"),
            "dirty": git.get("dirty"), "cpu": cpu_kind(), "cpu_count": os.cpu_count()}


def write_record(path: Path, args: argparse.Namespace, results: list[dict], load: tuple[list[float], list[float]],
                 started: str) -> None:
    """Put this run into the record at ``path`` under its space (the other spaces' entries stay)."""
    from lightning_nas.io import atomic_write_json

    record = json.loads(path.read_text()) if path.is_file() else {"spaces": {}}
    options = {k: v for k, v in vars(args).items() if k not in ("one", "record")}
    record["spaces"][args.space] = {
        "options": options, "environment": environment(path), "started": started,
        "load_average": {"before": load[0], "after": load[1]},
        "strategies": [{"label": r["label"], **({"unsupported": r["unsupported"]} if "unsupported" in r else {
            "operators": r["kernels"], "matrix_products": r["products"], "median_s": r["median_s"],
            "memory_bytes": r["memory_bytes"], "memory": r["memory"]})} for r in results]}
    record["spaces"] = dict(sorted(record["spaces"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201", help="a registered space (nb201, darts_cnn, nb1shot1, darts_rnn, ...)")
    parser.add_argument("--space_options", default="{}", help="JSON space options (e.g. '{\"search_space\": 3}')")
    parser.add_argument("--network", default="{}", help="JSON network options (default: the space's search network)")
    parser.add_argument("--hidden", type=int, default=300, help="darts_rnn: embedding and hidden size")
    parser.add_argument("--bptt", type=int, default=35, help="darts_rnn: tokens per window")
    parser.add_argument("--vocab", type=int, default=10000, help="darts_rnn: vocabulary size")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--record", type=Path, default=None,
                        help="also write this run into a JSON record (e.g. results/speed/operators.json)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args)))
        return
    results = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = [round(v, 2) for v in os.getloadavg()]
    passthrough = [f"--{k}={v}" for k, v in vars(args).items() if k not in ("one", "record")]
    for label in STRATEGIES:
        out = subprocess.run([sys.executable, __file__, "--one", label, *passthrough], cwd=ROOT, check=True,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.record:
        write_record(args.record, args, results, (load_before, [round(v, 2) for v in os.getloadavg()]), started)
    spos = results[0]
    shape = (f"tokens {args.batch} x {args.bptt}, hidden {args.hidden}, vocabulary {args.vocab}"
             if args.space == "darts_rnn" else
             f"network {network_options(args)}, batch {args.batch} x 3 x {args.image}^2")
    print(f"{args.space} super-net, {shape}, {args.threads} thread(s), median of {args.steps} steps; "
          f"memory: {spos['memory']}")
    print("| strategy | step time (ms) | time / SPOS | kernels / step | kernels / SPOS | matrix products | peak memory (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if "unsupported" in r:
            print(f"| {r['label']} | unsupported: {r['unsupported']} | | | | | |")
            continue
        print(f"| {r['label']} | {1000 * r['median_s']:.1f} | {r['median_s'] / spos['median_s']:.2f} | "
              f"{r['kernels']} | {r['kernels'] / spos['kernels']:.2f} | {r['products']} | {r['memory_bytes'] / 2 ** 20:.1f} |")


if __name__ == "__main__":
    main()
