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
Timing lives beside the table, not in it, so that a table's bytes depend on the protocol only: the
sidecar holds the session's totals, and ``T.times.csv`` (``table.times_path``) one row per architecture
with the wall-clock seconds of each seed's training (``train_seconds_seed<s>``, training plus the
evaluation of the recipe's splits, on the machine the sidecar names), their mean
(``train_seconds_mean``) and the mean CPU seconds of this process (``cpu_seconds_mean``, which other
load on a shared machine does not inflate): the per-cell training time that simulated wall-clock
needs (NAS-Bench-1Shot1 Sec. 5.4; ``lightning_nas.blackbox``).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ArgumentParser

from lightning_nas.tabulate.common import TabulateError
from lightning_nas.tabulate.noise import noise_ceiling
from lightning_nas.tabulate.options import (architectures, benchmark_keys, build_parser, check_outside_package,
                                            default_out, header, make_row, metric_names, parse_shard, protocol, validate,
                                            without_seeds)
from lightning_nas.tabulate.table import (_read_json, _same, append_line, merge, read_rows, shard_path, sidecar_path,
                                          times_header, times_path, times_row)
from lightning_nas.tabulate.training import _quiet, train_one


def tabulate(config: Any, argv: Optional[list[str]] = None, log=print) -> Path:
    """Run (or continue) a tabulation; returns the path of the table this process wrote.

    SIGTERM/SIGINT only set a flag (``lightning_nas.signals``); the flag is checked between
    architectures, so the architecture in training is finished and written first, the sidecar says
    ``partial``, and ``signals.Interrupted`` (a ``SystemExit`` with status 128 + signal) is raised."""
    try:
        from lightning_nas import signals
    except ImportError:  # without the flag module: exit at once, dropping the row in progress
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            return _tabulate(config, argv, log)
        finally:
            signal.signal(signal.SIGTERM, previous)
    with signals.handled():
        try:
            return _tabulate(config, argv, log)
        except SystemExit as error:
            # Lightning ends a fit on SIGTERM with its own SystemExit (status 0): report the signal instead
            if signals.pending() is not None and not isinstance(error, signals.Interrupted):
                raise signals.Interrupted(signals.pending(), "tabulate") from None
            raise


def _base_table(out: Path, columns: list[str], proto: dict[str, Any], seeds: list[int]) -> Optional[dict]:
    """The finished table at ``out`` made with a subset of ``seeds`` (same protocol otherwise): the table
    being extended with more seeds. Returns ``{architecture: {column: text}}`` or None."""
    sidecar = sidecar_path(out)
    if not (out.is_file() and sidecar.is_file()):
        return None
    old = _read_json(sidecar)
    old_seeds = [int(s) for s in old.get("seeds") or []]
    if not old_seeds or old_seeds == list(seeds) or not set(old_seeds) < set(seeds):
        return None
    if not _same(without_seeds(old.get("protocol")), without_seeds(proto)):
        raise TabulateError(f"{out} was made with another protocol (see {sidecar}); only its seeds may be extended")
    with out.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    missing = [c for c in columns if c not in (table[0] if table else {}) and not _is_new_seed(c, old_seeds)]
    if missing:
        raise TabulateError(f"{out}: cannot extend it, columns {missing[:3]} are missing")
    return {row["ArchitectureString"]: row for row in table}


def _is_new_seed(column: str, old_seeds: list[int]) -> bool:
    head, _, seed = column.rpartition("_seed")
    return bool(head) and seed.isdigit() and int(seed) not in old_seeds


def _pending_signal() -> Optional[int]:
    """The stop signal received (``lightning_nas.signals``), or None."""
    try:
        from lightning_nas import signals
    except ImportError:
        return None
    return signals.pending()


def _tabulate(config: Any, argv: Optional[list[str]], log) -> Path:
    import os

    import torch

    from lightning_nas.io import atomic_write_json
    from lightning_nas.run_record import cpu_kind, git_state, package_versions

    validate(config)
    index, count = parse_shard(config.shard)
    out = Path(config.out if config.out is not None else default_out(config))
    check_outside_package(out)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    _quiet()
    archs = architectures(config)
    metrics = metric_names(config)
    keys = benchmark_keys(config, archs)
    columns = header(metrics, config.seeds, keyed=keys is not None)
    proto = protocol(config)
    # extending a finished table with more seeds: its per-seed values are copied as they are and only
    # the new seeds are trained; one process writes OUT.extending.csv and replaces OUT when complete
    base = _base_table(out, columns, proto, list(config.seeds))
    path = shard_path(out, index, count)
    if base is not None and count == 1:
        path = out.with_name(f"{out.stem}.extending{out.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = sidecar_path(path)
    if sidecar.is_file() and path.is_file():
        previous = _read_json(sidecar)
        if not _same(previous.get("protocol"), proto):
            raise TabulateError(f"{path} was made with another protocol (see {sidecar}); choose another --out")
    done_rows = read_rows(path, columns)
    if not path.is_file() or path.stat().st_size == 0:
        append_line(path, columns)
    timing = times_path(path)
    read_rows(timing)  # drops a torn last line
    if not timing.is_file() or timing.stat().st_size == 0:
        append_line(timing, times_header(config.seeds))
    done = {row[1] for row in done_rows}
    mine = [(p, a) for p, a in enumerate(archs) if p % count == index]
    todo = [(p, a) for p, a in mine if str(a) not in done]
    if not todo and sidecar.is_file():  # complete already: keep its record (timing, noise ceiling) as it is
        log(f"[tabulate {index}/{count}] {len(mine)}/{len(mine)} architectures already in {path}; nothing to do")
        return path
    record = {
        "table": out.name if path.name.endswith(".extending.csv") else path.name,
        "command": [sys.executable, "-m", "lightning_nas.tabulate", *(argv or [])],
        "seeds": list(config.seeds), "shard": f"{index}/{count}", "protocol": proto,
        "metrics": metrics, "architectures_in_table_order": len(archs), "architectures_in_shard": len(mine),
        "versions": package_versions(), "git": git_state(), "cpu": cpu_kind(), "threads": torch.get_num_threads(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
    }
    previous_seconds = 0.0
    if sidecar.is_file():
        old = _read_json(sidecar)
        previous_seconds = float(old.get("train_seconds", 0.0))
        record["sessions"] = old.get("sessions", []) + [old.get("command")]
    if base is not None:
        old = _read_json(sidecar_path(out))
        record["extends"] = {"table": out.name, "seeds": old.get("seeds"), "command": old.get("command"),
                             "train_seconds": old.get("train_seconds")}
        previous_seconds = max(previous_seconds, float(old.get("train_seconds") or 0.0))
    atomic_write_json(sidecar, record)
    log(f"[tabulate {index}/{count}] {len(mine) - len(todo)}/{len(mine)} architectures already in {path}; "
        f"{len(todo)} to train x {len(config.seeds)} seeds" + (f" (extending {out})" if base is not None else ""))
    start, trained, stopped = time.perf_counter(), 0, False
    for position, arch in todo:
        if config.limit is not None and trained >= config.limit:
            break
        if _pending_signal() is not None:
            stopped = True
            log(f"[tabulate {index}/{count}] stop signal received: {trained} architectures written this session; "
                "rerun the same command to continue")
            break
        results, params, seconds = [], 0, []
        kept = base.get(str(arch)) if base is not None else None
        for seed in config.seeds:
            if kept is not None and f"{metrics[0]}_seed{seed}" in kept:
                results.append({m: float(kept[f"{m}_seed{seed}"]) for m in metrics})
                params = int(kept["params"])
                seconds.append(None)  # trained in an earlier session: its time is in that session's times file
                continue
            began, began_cpu = time.perf_counter(), time.process_time()
            metrics_of_seed, params = train_one(config, str(arch), seed)
            seconds.append((time.perf_counter() - began, time.process_time() - began_cpu))
            results.append(metrics_of_seed)
        # the times row first: a row of the table always has its time (a rerun skips the architecture)
        append_line(timing, times_row(position, str(arch), seconds))
        append_line(path, make_row(position, str(arch), results, metrics, config.max_epochs, params,
                                   key=keys[position] if keys is not None else None))
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
    if complete and count == 1 and path != out:  # an extension is finished: it becomes the table
        os.replace(sidecar, sidecar_path(out))
        if times_path(out).is_file():  # the earlier sessions' times stay beside the extension's
            os.replace(times_path(out), out.with_name(f"{out.stem}.before_extension.times.csv"))
        os.replace(timing, times_path(out))
        os.replace(path, out)
        path = out
    log(f"[tabulate {index}/{count}] {'complete' if complete else 'stopped'}: {path} ({_duration(elapsed)})")
    if stopped:
        from lightning_nas import signals

        raise signals.Interrupted(_pending_signal(), f"tabulate: {path}")
    return path


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """``kill PID`` stops at once: the row in progress is dropped, finished rows are on disk."""
    raise SystemExit(128 + signum)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


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
            check_outside_package(args.out, "merge --out")
            path = merge(args.shards, args.out, args.allow_partial)
            print(f"[tabulate] merged {len(args.shards)} shards -> {path}")
            return 0
        config = build_parser().parse_args(argv)
        try:
            tabulate(config, argv, log=lambda message: print(message, file=sys.stderr, flush=True))
        except SystemExit as error:
            signum = getattr(error, "signum", None)
            if signum is None:
                raise
            print(f"tabulate: stopped by {signal.Signals(signum).name}; finished rows are kept, rerun the same "
                  "command to continue", file=sys.stderr)
            return 128 + signum
        return 0
    except (TabulateError, ValueError, LookupError, OSError, argparse.ArgumentError) as error:
        message = " ".join(str(error).split())
        print(f"tabulate: error: {message}", file=sys.stderr)
        return 2
