"""A timing pass for a finished table made before tabulations recorded times:
``python -m lightning_nas.tabulate.timing --recipe R [--steps 8]``.

Simulated wall-clock (NAS-Bench-1Shot1, Zela et al. 2020, Sec. 5.4) needs each cell's training time.
Tabulations now write it themselves (``T.times.csv``, ``run.py``); for a table made before, this pass
builds every architecture of the recipe exactly as the tabulation does (``Standalone`` with the
recipe's network, optimiser and data), runs one warm-up step and then times ``--steps`` training
steps (forward, cross-entropy, backward, optimiser step) on one real training batch in this process's
CPU time on ``--threads`` threads, and scales the mean step to the protocol: steps per epoch x
``max_epochs``. It measures the training computation only (no data loading, augmentation, Lightning
loop or evaluation), which is what differs between cells; the sidecar (``T.times.json``) names the
machine, threads, steps and command. About 2 CPU-minutes for the 729-cell digits table.

Writes ``T.times.csv`` beside the recipe's ``out`` (``--times_out`` overrides): ``position,
ArchitectureString, train_seconds_mean, cpu_seconds_mean, params``; wall and CPU seconds are the
same scaled CPU measurement here (a timing pass on a shared machine cannot own the wall-clock).
"""
from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

from lightning_nas.tabulate.common import TabulateError


def training_batch(config: Any) -> tuple[Any, Any, int]:
    """The recipe's DataModule, one real training batch (x, y) and the number of steps per epoch."""
    from lightning_nas.tabulate.options import data_module

    data_class, data_options = data_module(config.data)
    data = data_class(**data_options, seed=config.split_seed if config.get("split_seed") is not None else 0)
    data.setup("fit")
    loader = data.train_dataloader()
    batch = data.on_after_batch_transfer(next(iter(loader)), 0)  # augmented and normalised, as training sees it
    return data, batch["weights"], len(loader)


def time_cell(config: Any, arch: str, steps: int, data: Any, batch: tuple[Any, Any]) -> tuple[float, int]:
    """(CPU seconds of one training step, parameters) of ``arch`` under ``config`` on ``batch``."""
    import torch.nn.functional as F

    from lightning_nas.strategies.standalone import Standalone
    from lightning_nas.tabulate.options import strategy_options

    x, y = batch
    model = Standalone(arch, space=config.space, space_options=config.space_options or None,
                       num_classes=data.num_classes, in_channels=data.in_channels, seed=0,
                       **strategy_options(config.model))
    optimizer, _ = model.weight_optimizer()
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits, _ = model.supernet.forward_with_auxiliary(x, model.architecture)
        F.cross_entropy(logits, y).backward()
        optimizer.step()

    step()  # warm-up: first-call allocations are not training time
    began = time.process_time()
    for _ in range(steps):
        step()
    per_step = (time.process_time() - began) / steps
    return per_step, sum(p.numel() for p in model.supernet.parameters())


def main(argv: Optional[list[str]] = None) -> int:
    import torch

    from lightning_nas.io import atomic_write_csv, atomic_write_json
    from lightning_nas.run_record import cpu_kind, git_state, package_versions
    from lightning_nas.tabulate.options import architectures, build_parser, default_out, validate
    from lightning_nas.tabulate.table import times_path
    from lightning_nas.tabulate.training import _quiet

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.prog = "python -m lightning_nas.tabulate.timing"
    parser.add_argument("--steps", type=int, default=8, help="Timed training steps per architecture.")
    parser.add_argument("--times_out", type=Optional[str], default=None,
                        help="The times CSV (default: the recipe's out with .times.csv).")
    try:
        config = parser.parse_args(argv)
        validate(config)
        if config.steps < 1:
            raise TabulateError(f"--steps must be >= 1, got {config.steps}")
        out = Path(config.times_out or times_path(Path(config.out or default_out(config))))
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        _quiet()
        rows, started = [], time.perf_counter()
        data, batch, steps_per_epoch = training_batch(config)
        for position, arch in enumerate(architectures(config)):
            per_step, params = time_cell(config, str(arch), config.steps, data, batch)
            seconds = per_step * steps_per_epoch * config.max_epochs
            rows.append([position, str(arch), f"{seconds:.4f}", f"{seconds:.4f}", params])
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(out, ["position", "ArchitectureString", "train_seconds_mean", "cpu_seconds_mean", "params"], rows)
        atomic_write_json(out.with_suffix(".json"), {
            "times": out.name, "method": f"CPU time of {config.steps} training steps after one warm-up step, per "
                                         "architecture, scaled to steps per epoch x max_epochs (lightning_nas.tabulate.timing)",
            "steps": config.steps, "max_epochs": config.max_epochs, "architectures": len(rows),
            "command": [sys.executable, "-m", "lightning_nas.tabulate.timing", *argv], "cpu": cpu_kind(),
            "threads": torch.get_num_threads(), "versions": package_versions(), "git": git_state(),
            "process_seconds": round(time.perf_counter() - started, 1),
            "made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        print(f"[tabulate.timing] {len(rows)} architectures -> {out}", file=sys.stderr)
        if not all(math.isfinite(float(r[2])) for r in rows):
            raise TabulateError(f"{out}: a timing is not finite")
        return 0
    except (TabulateError, ValueError, LookupError, OSError, argparse.ArgumentError) as error:
        print(f"tabulate.timing: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
