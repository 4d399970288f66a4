"""Training throughput (images/second) of the DARTS CNN evaluation network under speed options,
each relative to plain fp32 eager, measured in one run.

    python speed/eval_network_speed.py [--genotype DARTS_V2 --C 36 --layers 20 --batch 8 --steps 4
                                             --rounds 3 --threads 1 --device cpu --variants all --json out.json]

Variants: ``fp32`` (eager, contiguous), ``bf16`` (``torch.autocast`` bfloat16 around forward and
loss, as Lightning's ``bf16-mixed``), ``fp16`` (CUDA only: autocast float16 with a GradScaler, as
``16-mixed``), ``channels_last`` (model and inputs in channels-last memory format, fp32),
``channels_last_bf16`` and ``compile`` (``torch.compile`` of the model, fp32; its compile time is
reported separately and excluded from the throughput).

One training step is what the stand-alone recipe does: forward with the auxiliary head and
drop-path 0.2, cross-entropy plus 0.4 x auxiliary cross-entropy, backward, gradient-norm clipping
at 5, SGD with momentum. Every variant builds the same network from the same seed and trains on
the same random CIFAR-sized batch. To spread machine-load drift evenly, the variants run
round-robin: ``rounds`` times ``steps`` timed steps each (after ``warmup`` untimed steps);
the reported time per step is the median over all timed steps of a variant.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("fp32", "bf16", "fp16", "channels_last", "channels_last_bf16", "compile")


def build(args: argparse.Namespace, variant: str) -> Callable[[], None]:
    import torch
    from torch import nn

    from lightning_nas.nn.darts_cnn import DartsCNNNetwork
    from lightning_nas.spaces.darts_cnn import DartsCNNSpace

    device = torch.device(args.device)
    torch.manual_seed(0)
    space = DartsCNNSpace()
    net = DartsCNNNetwork(space, arch=space.parse(args.genotype), C=args.C, layers=args.layers, auxiliary=True,
                          affine=True, pool_bn=False, drop_path_prob=0.2).to(device)
    net.set_drop_path(0.2)
    net.train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.image, args.image, generator=gen).to(device)
    y = torch.randint(10, (args.batch,), generator=gen).to(device)
    channels_last = variant.startswith("channels_last")
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = {"bf16": torch.bfloat16, "channels_last_bf16": torch.bfloat16, "fp16": torch.float16}.get(variant)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    scaler = torch.amp.GradScaler(device.type) if variant == "fp16" else None
    # torch.compile wraps the bound forward (with the auxiliary head); compilation happens in warm-up
    forward = torch.compile(net.forward_with_auxiliary) if variant == "compile" else net.forward_with_auxiliary

    def loss_of() -> Any:
        logits, aux = forward(x)
        loss = nn.functional.cross_entropy(logits, y)
        if aux is not None:
            loss = loss + 0.4 * nn.functional.cross_entropy(aux, y)
        return loss

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        if dtype is not None:
            with torch.autocast(device.type, dtype=dtype):
                loss = loss_of()
        else:
            loss = loss_of()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--genotype", default="DARTS_V2")
    parser.add_argument("--C", type=int, default=36)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default="all", help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--json", default=None, help="write the results here as well")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    wanted = VARIANTS if args.variants == "all" else tuple(v.strip() for v in args.variants.split(","))
    if args.device == "cpu":
        wanted = tuple(v for v in wanted if v != "fp16")  # float16 autocast is a GPU option
    steps: dict[str, Callable[[], None]] = {}
    results: dict[str, dict] = {}
    for variant in wanted:
        try:
            info: dict = {}
            step = build(args, variant)
            start = time.perf_counter()
            for _ in range(args.warmup):
                step()
            info["warmup_s"] = round(time.perf_counter() - start, 2)
            steps[variant], results[variant] = step, {**info, "times": []}
        except Exception as error:  # a variant that cannot run here is reported, not fatal
            results[variant] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
        print(f"[warm-up] {variant}: {results[variant]}", flush=True)
    for _ in range(args.rounds):
        for variant, step in steps.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                results[variant]["times"].append(time.perf_counter() - start)
    base = None
    for variant in wanted:
        times = results[variant].pop("times", None)
        if not times:
            continue
        median = statistics.median(times)
        results[variant].update(step_s=round(median, 4), images_per_s=round(args.batch / median, 2))
        if variant == "fp32":
            base = results[variant]["images_per_s"]
    for variant in results:
        if base and "images_per_s" in results[variant]:
            results[variant]["relative_to_fp32"] = round(results[variant]["images_per_s"] / base, 3)
    machine = {"device": args.device, "torch": torch.__version__, "python": platform.python_version(),
               "cpu": platform.processor() or platform.machine(), "threads": args.threads}
    if args.device.startswith("cuda"):
        machine["gpu"] = torch.cuda.get_device_name(0)
    report = {"machine": machine, "settings": {k: v for k, v in vars(args).items() if k != "json"}, "results": results}
    print("| variant | images/s | relative to fp32 eager | note |")
    print("|---|---|---|---|")
    for variant, r in results.items():
        note = r.get("error", f"warm-up {r.get('warmup_s')} s")
        print(f"| {variant} | {r.get('images_per_s', '-')} | {r.get('relative_to_fp32', '-')} | {note} |")
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
