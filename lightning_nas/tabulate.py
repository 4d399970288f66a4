"""Make your own ground truth: train architectures stand-alone and write a benchmark table.

``python -m lightning_nas.tabulate --recipe R [--shard i/k] [--out PATH] [--limit N]`` trains every
architecture of an enumerable space (``architectures: all``) or a seeded uniform sample of N
(``architectures: N``) with each of the recipe's seeds, using the same ``Standalone`` module,
``ImageDataModule`` and Lightning ``Trainer`` as every other run, and appends one CSV row per
architecture: ``position, ArchitectureString, <metric>_mean, <metric>_std, <metric>_seed<s>...,
epochs, params``. ``CSVBenchmark``/``TabulatedBenchmark`` read it with e.g.
``metric: test_accuracy_mean``.

Why it is built this way:
  * crash-safe and resumable: a row is appended as one complete line, flushed and fsynced, only
    after all seeds of its architecture finished; a rerun skips rows already there (and drops a
    torn last line), so a killed tabulation loses at most the architecture in progress;
  * shardable: ``--shard i/k`` (0 <= i < k) takes every k-th position into its own file;
    ``python -m lightning_nas.tabulate merge --out T SHARD...`` sorts the union by position, which
    is exactly the order a single process writes, so merged and single-process tables are equal;
  * reproducible: each training calls ``seed_everything(seed)`` and seeds the DataModule; the JSON
    sidecar (``T.json``) records the command, seeds, protocol, package versions and git state, and
    for a complete table the noise ceiling (seed-to-seed rank correlations, Spearman-Brown) and
    the table's spread.
Timing lives in the sidecar, not in the table, so that a table's bytes depend on the protocol only.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import inspect
import itertools
import logging
import math
import os
import signal
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

from jsonargparse import ActionConfigFile, ArgumentParser

PROTOCOL_KEYS = ("space", "space_options", "architectures", "sample_seed", "seeds", "max_epochs", "evaluate",
                 "model", "data", "trainer")
SPLITS = ("val", "test")
#: Trainer options the tabulation fixes itself (a recipe may not override them).
FIXED_TRAINER = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, deterministic=True, num_sanity_val_steps=0)


class TabulateError(ValueError):
    """Bad recipe, options or table file; the message names the key or file."""


# ---------------------------------------------------------------------------- options
def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m lightning_nas.tabulate", exit_on_error=False,
                            description="Train architectures stand-alone and write a ground-truth table. "
                                        "Merge shard tables with: python -m lightning_nas.tabulate merge --out T SHARD...")
    parser.add_argument("--recipe", "-c", action=ActionConfigFile, help="A tabulation recipe (YAML).")
    parser.add_argument("--space", type=str, default="nb201", help="Registered search space.")
    parser.add_argument("--space_options", type=dict, default={}, help="Space keyword arguments (operations).")
    parser.add_argument("--architectures", type=Union[Literal["all"], int], default="all",
                        help="'all' (enumerate the space) or N: a seeded uniform sample of N distinct architectures.")
    parser.add_argument("--sample_seed", type=int, default=0, help="Seed of the architecture sample.")
    parser.add_argument("--seeds", type=list[int], default=[0, 1], help="Training seeds per architecture.")
    parser.add_argument("--max_epochs", type=int, default=10)
    parser.add_argument("--evaluate", type=list[Literal["val", "test"]], default=["test"],
                        help="Splits evaluated after training: val (held-out training images) and/or test.")
    parser.add_argument("--model", type=dict, default={},
                        help="Standalone keyword arguments (network, lr, weight_decay, ...).")
    parser.add_argument("--data", type=dict, default={},
                        help="ImageDataModule keyword arguments, or {class_path, init_args} of another DataModule.")
    parser.add_argument("--trainer", type=dict, default={}, help="Further Trainer keyword arguments.")
    parser.add_argument("--out", type=Optional[str], default=None, help="The table (CSV); sidecar: same name .json.")
    parser.add_argument("--shard", type=Optional[str], default=None, help="i/k: positions p with p % k == i.")
    parser.add_argument("--limit", type=Optional[int], default=None,
                        help="Stop after this many new architectures (a deliberate, resumable stop).")
    parser.add_argument("--threads", type=Optional[int], default=1, help="torch threads (None: torch's default).")
    return parser


def parse_shard(text: Optional[str]) -> tuple[int, int]:
    if text is None:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise TabulateError(f"--shard must read i/k (e.g. 0/2), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise TabulateError(f"--shard {text}: need k >= 1 and 0 <= i < k")
    return index, count


def _check_keywords(factory: Any, options: dict[str, Any], key: str, reserved: Sequence[str] = ()) -> None:
    """Unknown or reserved keyword -> one line naming ``key.option`` and the valid ones."""
    parameters = [p for p in inspect.signature(factory).parameters if p not in ("self", "args", "kwargs")]
    for name in options:
        if name in reserved:
            raise TabulateError(f"{key}.{name} is set by the tabulation itself; remove it from the recipe")
        if name not in parameters:
            valid = ", ".join(p for p in parameters if p not in reserved)
            raise TabulateError(f"{key}.{name}: unknown option for {factory.__name__}; valid: {valid}")


def data_module(data: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """``data``: ImageDataModule keyword arguments, or ``{class_path, init_args}`` naming another
    DataModule as in a training recipe (e.g. ``lightning_nas.data.PTBDataModule``)."""
    if "class_path" not in data:
        from lightning_nas.data.images import ImageDataModule

        return ImageDataModule, dict(data)
    import importlib

    extra = sorted(set(data) - {"class_path", "init_args"})
    if extra:
        raise TabulateError(f"data: with data.class_path the options go under data.init_args, not {', '.join(extra)}")
    module_name, _, name = str(data["class_path"]).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name), dict(data.get("init_args") or {})
    except (ImportError, AttributeError, ValueError):
        raise TabulateError(f"data.class_path: cannot import {data['class_path']!r}") from None


def validate(config: Any) -> None:
    from pytorch_lightning import Trainer

    from lightning_nas.strategies.base import SearchStrategy

    if not config.seeds or len(set(config.seeds)) != len(config.seeds):
        raise TabulateError(f"seeds must be a non-empty list of distinct integers, got {config.seeds}")
    if config.max_epochs < 1:
        raise TabulateError(f"max_epochs must be >= 1, got {config.max_epochs}")
    if not config.evaluate:
        raise TabulateError("evaluate must name at least one split (val, test)")
    if isinstance(config.architectures, int) and config.architectures < 1:
        raise TabulateError(f"architectures must be 'all' or a positive count, got {config.architectures}")
    if config.limit is not None and config.limit < 0:
        raise TabulateError(f"limit must be >= 0, got {config.limit}")
    _check_keywords(SearchStrategy.__init__, config.model, "model",
                    reserved=("space", "space_options", "num_classes", "in_channels", "seed"))
    data_class, data_options = data_module(config.data)
    _check_keywords(data_class.__init__, data_options, "data", reserved=("seed",))
    _check_keywords(Trainer.__init__, config.trainer, "trainer", reserved=("max_epochs", *FIXED_TRAINER))
    from lightning_nas.data.sources import IMAGE_SOURCES
    from lightning_nas.registry import UnknownNameError
    from lightning_nas.spaces import SPACES

    try:
        IMAGE_SOURCES.get(config.data.get("dataset", "digits"))
    except UnknownNameError as error:
        raise TabulateError(f"data.dataset: {error}") from None
    try:
        SPACES.get(config.space)(**config.space_options)
    except UnknownNameError as error:
        raise TabulateError(f"space: {error}") from None
    except (TypeError, ValueError) as error:
        raise TabulateError(f"space_options: {error}") from None
    if "val" in config.evaluate and config.data.get("val_split", 0.2) in (0, 0.0):
        raise TabulateError("evaluate: 'val' needs a validation split; set data.val_split > 0 or evaluate only test")


def protocol(config: Any) -> dict[str, Any]:
    """What determines the table's numbers (compared on resume and merge)."""
    return {key: config[key] for key in PROTOCOL_KEYS}


# ---------------------------------------------------------------------------- architectures and columns
def architectures(config: Any) -> list[Any]:
    """The table's architectures in table order: enumeration order, or sampling order."""
    from lightning_nas.seeding import generator
    from lightning_nas.spaces import SPACES

    try:
        space = SPACES.get(config.space)(**config.space_options)
    except TypeError as error:
        raise TabulateError(f"space_options: {error}") from None
    if config.architectures == "all":
        try:
            return list(space.enumerate())
        except NotImplementedError as error:
            raise TabulateError(f"architectures: {error}; give a sample size instead") from None
    if config.architectures > space.size:
        raise TabulateError(f"architectures: {config.architectures} exceeds the space's {space.size} architectures; "
                            "use 'all'")
    return space.sample_many(config.architectures, generator(config.sample_seed, "tabulate"))


def metric_names(config: Any) -> list[str]:
    return [f"{split}_{name}" for split in SPLITS if split in config.evaluate for name in ("accuracy", "loss")]


def header(metrics: Sequence[str], seeds: Sequence[int]) -> list[str]:
    columns = ["position", "ArchitectureString"]
    for metric in metrics:
        columns += [f"{metric}_mean", f"{metric}_std"] + [f"{metric}_seed{s}" for s in seeds]
    return columns + ["epochs", "params"]


def _fmt(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)


def make_row(position: int, arch: str, results: Sequence[dict[str, float]], metrics: Sequence[str],
             epochs: int, params: int) -> list[str]:
    """Mean and std (sample std, ddof=1; 0 for one seed) of the per-seed values as written."""
    row = [str(position), arch]
    for metric in metrics:
        values = [float(_fmt(r[metric])) for r in results]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        row += [_fmt(statistics.fmean(values)), _fmt(std)] + [_fmt(v) for v in values]
    return row + [str(epochs), str(params)]


# ---------------------------------------------------------------------------- training one architecture
def _quiet() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def train_one(config: Any, arch: str, seed: int) -> tuple[dict[str, float], int]:
    """Train ``arch`` stand-alone with ``seed``; metrics of the evaluated splits and the parameter count."""
    from pytorch_lightning import Trainer, seed_everything

    from lightning_nas.strategies.standalone import Standalone

    seed_everything(seed, verbose=False)
    data_class, data_options = data_module(config.data)
    data = data_class(**data_options, seed=seed)
    model = Standalone(arch, space=config.space, space_options=config.space_options or None,
                       num_classes=data.num_classes, in_channels=data.in_channels, seed=seed, **config.model)
    trainer_options = {"accelerator": "cpu", "devices": 1, **config.trainer, **FIXED_TRAINER}
    trainer = Trainer(max_epochs=config.max_epochs, limit_val_batches=0, **trainer_options)
    trainer.fit(model, datamodule=data)
    if trainer.interrupted or trainer.current_epoch != config.max_epochs:
        # Lightning ends fit quietly on SIGTERM/interrupts; such a half-trained net must never become a row
        raise TabulateError(f"training of {arch} (seed {seed}) stopped at epoch {trainer.current_epoch} "
                            f"of {config.max_epochs}; no row written")
    results: dict[str, float] = {}
    for split in config.evaluate:
        evaluator = Trainer(**trainer_options)
        run = evaluator.validate if split == "val" else evaluator.test
        logged = run(model, datamodule=data, verbose=False)[0]
        results[f"{split}_accuracy"] = float(logged[f"{split}/accuracy"])
        results[f"{split}_loss"] = float(logged[f"{split}/loss"])
    params = sum(p.numel() for p in model.supernet.parameters())
    return results, params


# ---------------------------------------------------------------------------- the table file
def read_rows(path: Path, expected_header: Optional[list[str]] = None) -> list[list[str]]:
    """Complete rows of a table; a torn last line (killed mid-write) is cut off the file."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(raw.rfind(b"\n") + 1)
        raw = path.read_bytes()
    lines = list(csv.reader(raw.decode().splitlines()))
    if not lines:
        return []
    if expected_header is not None and lines[0] != expected_header:
        raise TabulateError(f"{path}: its columns {lines[0][:6]}... differ from this recipe's "
                            f"{expected_header[:6]}...; choose another --out or restore the recipe")
    return lines[1:]


def append_line(path: Path, fields: Sequence[str]) -> None:
    """One complete line per write, flushed and fsynced: the file only ever grows by whole rows."""
    from io import StringIO

    buffer = StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    with path.open("a") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())


def sidecar_path(table: Path) -> Path:
    return table.with_suffix(".json")


def shard_path(out: Path, index: int, count: int) -> Path:
    return out if count == 1 else out.with_name(f"{out.stem}.shard{index}of{count}{out.suffix}")


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise TabulateError(f"{path}: cannot read the sidecar ({error})") from None


def _same(a: Any, b: Any) -> bool:
    import json

    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


# ---------------------------------------------------------------------------- tabulate
def tabulate(config: Any, argv: Optional[list[str]] = None, log=print) -> Path:
    """Run (or continue) a tabulation; returns the path of the table this process wrote."""
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _tabulate(config, argv, log)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tabulate(config: Any, argv: Optional[list[str]], log) -> Path:
    import torch

    from lightning_nas.io import atomic_write_json
    from lightning_nas.run_record import git_state, package_versions

    validate(config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    _quiet()
    index, count = parse_shard(config.shard)
    if config.out is None:
        raise TabulateError("out: where to write the table (set it in the recipe or with --out)")
    path = shard_path(Path(config.out), index, count)
    path.parent.mkdir(parents=True, exist_ok=True)
    archs = architectures(config)
    metrics = metric_names(config)
    columns = header(metrics, config.seeds)
    proto = protocol(config)
    sidecar = sidecar_path(path)
    if sidecar.is_file() and path.is_file():
        previous = _read_json(sidecar)
        if not _same(previous.get("protocol"), proto):
            raise TabulateError(f"{path} was made with another protocol (see {sidecar}); choose another --out")
    done_rows = read_rows(path, columns)
    if not path.is_file() or path.stat().st_size == 0:
        append_line(path, columns)
    done = {row[1] for row in done_rows}
    mine = [(p, a) for p, a in enumerate(archs) if p % count == index]
    todo = [(p, a) for p, a in mine if str(a) not in done]
    record = {
        "table": path.name, "command": [sys.executable, "-m", "lightning_nas.tabulate", *(argv or [])],
        "seeds": list(config.seeds), "shard": f"{index}/{count}", "protocol": proto,
        "metrics": metrics, "architectures_in_table_order": len(archs), "architectures_in_shard": len(mine),
        "versions": package_versions(), "git": git_state(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
    }
    previous_seconds = 0.0
    if sidecar.is_file():
        old = _read_json(sidecar)
        previous_seconds = float(old.get("train_seconds", 0.0))
        record["sessions"] = old.get("sessions", []) + [old.get("command")]
    atomic_write_json(sidecar, record)
    log(f"[tabulate {index}/{count}] {len(mine) - len(todo)}/{len(mine)} architectures already in {path}; "
        f"{len(todo)} to train x {len(config.seeds)} seeds")
    start, trained = time.perf_counter(), 0
    for position, arch in todo:
        if config.limit is not None and trained >= config.limit:
            break
        results, params = [], 0
        for seed in config.seeds:
            metrics_of_seed, params = train_one(config, str(arch), seed)
            results.append(metrics_of_seed)
        append_line(path, make_row(position, str(arch), results, metrics, config.max_epochs, params))
        trained += 1
        elapsed = time.perf_counter() - start
        rate = elapsed / trained
        left = len(todo) - trained
        first = metrics[0]
        values = [r[first] for r in results]
        log(f"[tabulate {index}/{count}] {len(mine) - len(todo) + trained}/{len(mine)} done, "
            f"{rate:.1f} s/arch, {_duration(rate * left)} left | {arch} {first}="
            f"{statistics.fmean(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})")
    elapsed = time.perf_counter() - start
    complete = len(read_rows(path, columns)) == len(mine)
    record.update(status="complete" if complete else "partial", trained_this_session=trained,
                  train_seconds=previous_seconds + elapsed,
                  seconds_per_architecture=(elapsed / trained) if trained else None,
                  finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    if complete and count == 1:
        record["noise_ceiling"] = noise_ceiling(path, config.seeds, metrics)
    atomic_write_json(sidecar, record)
    log(f"[tabulate {index}/{count}] {'complete' if complete else 'stopped'}: {path} ({_duration(elapsed)})")
    return path


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """``kill PID`` stops at once: the row in progress is dropped, finished rows are on disk."""
    raise SystemExit(128 + signum)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


# ---------------------------------------------------------------------------- merge
def merge(shards: Sequence[str | Path], out: str | Path, allow_partial: bool = False) -> Path:
    """Union of shard tables in position order: the table one process would have written."""
    from lightning_nas.io import atomic_write_json, atomic_write_text

    if not shards:
        raise TabulateError("merge: name the shard tables to merge")
    paths = [Path(s) for s in shards]
    for p in paths:
        if not p.is_file():
            raise TabulateError(f"merge: shard table {p} does not exist")
    sidecars = [_read_json(sidecar_path(p)) if sidecar_path(p).is_file() else None for p in paths]
    known = [s for s in sidecars if s is not None]
    if any(not _same(s.get("protocol"), known[0].get("protocol")) for s in known):
        raise TabulateError("merge: the shards were made with different protocols (compare their .json sidecars)")
    with paths[0].open() as handle:
        columns = next(csv.reader(handle), None)
    if not columns:
        raise TabulateError(f"merge: {paths[0]} has no header")
    rows: dict[int, list[str]] = {}
    for p in paths:
        for row in read_rows(p, columns):
            position = int(row[0])
            if position in rows and rows[position] != row:
                raise TabulateError(f"merge: position {position} differs between shards ({p})")
            rows[position] = row
    total = known[0].get("architectures_in_table_order") if known else None
    if total is not None and len(rows) != total and not allow_partial:
        raise TabulateError(f"merge: {len(rows)} of {total} architectures present; finish the shards "
                            "(rerun them: they resume) or pass --allow_partial")
    from io import StringIO

    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows[p] for p in sorted(rows))
    target = Path(out)
    atomic_write_text(target, buffer.getvalue())
    if known:
        first = known[0]
        seeds = first["seeds"]
        record = {key: first[key] for key in ("protocol", "seeds", "metrics", "architectures_in_table_order",
                                               "versions", "git") if key in first}
        record.update(table=target.name, status="complete" if len(rows) == total else "partial",
                      command=[sys.executable, "-m", "lightning_nas.tabulate", "merge", "--out", str(out),
                               *map(str, shards)],
                      merged_from=[{"table": p.name, "command": s.get("command") if s else None,
                                    "sessions": s.get("sessions", []) if s else [],
                                    "train_seconds": s.get("train_seconds") if s else None,
                                    "seconds_per_architecture": s.get("seconds_per_architecture") if s else None}
                                   for p, s in zip(paths, sidecars)],
                      merged=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        # process-seconds summed over shards (sessions killed before they finished are not counted)
        record["train_seconds"] = sum(s.get("train_seconds") or 0.0 for s in known)
        record["process_seconds_per_architecture"] = record["train_seconds"] / max(1, len(rows))
        record["noise_ceiling"] = noise_ceiling(target, seeds, first["metrics"])
        atomic_write_json(sidecar_path(target), record)
    return target


# ---------------------------------------------------------------------------- noise ceiling
def noise_ceiling(path: str | Path, seeds: Sequence[int], metrics: Sequence[str],
                  tie_threshold: float = 0.1) -> dict[str, Any]:
    """How reproducible is the table? Per metric:

    * seed-to-seed Kendall tau and Spearman rho, averaged over seed pairs: the rank agreement of
      two independent trainings, the ceiling for any proxy predicting one training;
    * Spearman-Brown ``S r / (1 + (S - 1) r)``: the expected reliability of the S-seed mean;
    * both again on the better half of the table (by mean), where a search actually decides;
    * the spread of the means: best, mean, worst, and how many architectures lie within
      ``tie_threshold`` of the best and what fraction of pairs lie within it of each other
      (the pairs sparse Kendall tau treats as ties).
    """
    from lightning_nas.metrics import kendall_tau, spearman_rho

    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    summary: dict[str, Any] = {"architectures": len(rows), "seeds": len(seeds), "tie_threshold": tie_threshold}
    for metric in metrics:
        means = [float(r[f"{metric}_mean"]) for r in rows]
        per_seed = [[float(r[f"{metric}_seed{s}"]) for r in rows] for s in seeds]
        better_half = sorted(range(len(rows)), key=lambda i: means[i], reverse="accuracy" in metric)
        better_half = better_half[:max(2, len(rows) // 2)]
        entry: dict[str, Any] = {}
        for name, subset in (("all", list(range(len(rows)))), ("better_half", better_half)):
            if len(seeds) < 2 or len(subset) < 2:
                break
            kendalls, spearmans = [], []
            for a, b in itertools.combinations(range(len(seeds)), 2):
                x = [per_seed[a][i] for i in subset]
                y = [per_seed[b][i] for i in subset]
                with warnings.catch_warnings():  # a constant column (all seeds at chance) has no correlation
                    warnings.simplefilter("ignore")
                    kendalls.append(kendall_tau(x, y))
                    spearmans.append(spearman_rho(x, y))
            k, r, s = statistics.fmean(kendalls), statistics.fmean(spearmans), len(seeds)
            brown = s * r / (1 + (s - 1) * r) if math.isfinite(r) and 1 + (s - 1) * r > 0 else float("nan")
            entry[name] = {"seed_to_seed_kendall": _round(k), "seed_to_seed_spearman": _round(r),
                           "spearman_brown_mean_of_seeds": _round(brown)}
        ordered = sorted(means, reverse=True)
        best = ordered[0] if "accuracy" in metric else ordered[-1]
        close_pairs = sum(1 for a, b in itertools.combinations(means, 2) if abs(a - b) < tie_threshold)
        pairs = len(means) * (len(means) - 1) // 2
        entry["spread"] = {"best": best, "mean": round(statistics.fmean(means), 4),
                           "worst": ordered[-1] if "accuracy" in metric else ordered[0],
                           "median": round(statistics.median(means), 4),
                           "within_threshold_of_best": sum(1 for m in means if abs(m - best) < tie_threshold),
                           "pairs_within_threshold": close_pairs,
                           "fraction_of_pairs_within_threshold": round(close_pairs / max(1, pairs), 4),
                           "mean_seed_std": round(statistics.fmean(float(r[f"{metric}_std"]) for r in rows), 4)}
        summary[metric] = entry
    return summary


def _round(value: float) -> Optional[float]:
    """4 decimals; None for an undefined correlation (constant column), which JSON cannot hold as NaN."""
    return round(value, 4) if math.isfinite(value) else None


# ---------------------------------------------------------------------------- command line
def build_merge_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m lightning_nas.tabulate merge", exit_on_error=False,
                            description="Merge shard tables into the table a single process would write.")
    parser.add_argument("--out", type=str, required=True, help="The merged table (CSV).")
    parser.add_argument("--allow_partial", action="store_true", help="Merge even if architectures are missing.")
    parser.add_argument("shards", type=str, nargs="+", help="Shard tables (CSV).")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["merge"]:
            args = build_merge_parser().parse_args(argv[1:])
            path = merge(args.shards, args.out, args.allow_partial)
            print(f"[tabulate] merged {len(args.shards)} shards -> {path}")
            return 0
        config = build_parser().parse_args(argv)
        tabulate(config, argv, log=lambda message: print(message, file=sys.stderr, flush=True))
        return 0
    except (TabulateError, ValueError, LookupError, OSError, argparse.ArgumentError) as error:
        message = " ".join(str(error).split())
        print(f"tabulate: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
