"""The table file: rows appended atomically, resumed, sharded and merged."""
from __future__ import annotations

import csv
import datetime
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from lightning_nas.tabulate.common import TabulateError
from lightning_nas.tabulate.noise import noise_ceiling


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


def times_path(table: Path) -> Path:
    """The per-architecture training times beside ``table`` (``T.csv`` -> ``T.times.csv``)."""
    return table.with_suffix(".times.csv")


def times_header(seeds: Sequence[int]) -> list[str]:
    return (["position", "ArchitectureString", "train_seconds_mean", "cpu_seconds_mean"]
            + [f"train_seconds_seed{s}" for s in seeds])


def times_row(position: int, arch: str, seconds: Sequence[Optional[tuple[float, float]]]) -> list[str]:
    """Wall-clock seconds per seed (blank where a seed was not trained in this session), their mean,
    and the mean CPU seconds (each given as ``(wall, cpu)``)."""
    measured = [s for s in seconds if s is not None]
    wall = f"{sum(w for w, _ in measured) / len(measured):.4f}" if measured else ""
    cpu = f"{sum(c for _, c in measured) / len(measured):.4f}" if measured else ""
    return [str(position), arch, wall, cpu] + ["" if s is None else f"{s[0]:.4f}" for s in seconds]


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
    _merge_times(paths, target)
    if known:
        first = known[0]
        seeds = first["seeds"]
        record = {key: first[key] for key in ("protocol", "seeds", "metrics", "architectures_in_table_order",
                                               "extends", "versions", "git", "cpu", "threads") if key in first}
        record.update(table=target.name, status="complete" if len(rows) == total else "partial",
                      command=[sys.executable, "-m", "lightning_nas.tabulate", "merge", "--out", str(out),
                               *map(str, shards)],
                      merged_from=[{"table": p.name, "command": s.get("command") if s else None,
                                    "sessions": s.get("sessions", []) if s else [],
                                    "train_seconds": s.get("train_seconds") if s else None,
                                    "seconds_per_architecture": s.get("seconds_per_architecture") if s else None}
                                   for p, s in zip(paths, sidecars, strict=True)],
                      merged=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        # process-seconds summed over shards (sessions killed before they finished are not counted)
        record["train_seconds"] = sum(s.get("train_seconds") or 0.0 for s in known)
        record["process_seconds_per_architecture"] = record["train_seconds"] / max(1, len(rows))
        record["noise_ceiling"] = noise_ceiling(target, seeds, first["metrics"])
        atomic_write_json(sidecar_path(target), record)
    return target


def _merge_times(shards: Sequence[Path], target: Path) -> None:
    """The shards' times files, merged in position order like the table (skipped unless every shard has one)."""
    from lightning_nas.io import atomic_write_text

    sources = [times_path(p) for p in shards]
    if not all(p.is_file() for p in sources):
        return
    with sources[0].open() as handle:
        columns = next(csv.reader(handle), None)
    if not columns:
        return
    rows: dict[int, list[str]] = {}
    for p in sources:
        for row in read_rows(p, columns):
            rows[int(row[0])] = row
    from io import StringIO

    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows[p] for p in sorted(rows))
    atomic_write_text(times_path(target), buffer.getvalue())
