"""``train.py --reproduce RUN_DIR``: rerun a run from its own resolved recipe and compare the results.

``--reproduce`` is a parser option of ``train.py`` (``lightning_nas.cli``): it reads the run's
``config.yaml`` like ``--recipe`` and the rerun goes, through the normal train.py path, to
``RUN_DIR-reproduce`` beside the run, or, for a trial of an experiment, to
``EXPERIMENT_DIR-reproduce/<trial>`` beside the experiment (never into it, where the report would
count it as one more group); ``--run_dir`` chooses another place.
On CPU every logged number must come out identical; the comparison covers the files that hold
results (``selection.json``, ``metrics.csv``, ``ranking/epoch_*.csv``, ``decoding.csv``) value by
value, is printed, and is saved as ``reproduce.json`` in the new run directory. The rerun uses the
original's torch thread count (``run.json`` ``torch_threads``, or ``threads`` in its config.yaml): CPU float reductions depend on it.
Differences in the recorded versions, git commit or thread count (``run.json``) are printed as
notes, since they explain most differences.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from lightning_nas.io import atomic_write_json
from lightning_nas.run_record import EXPERIMENT_RECORD, TRIAL_RECORD

RESULT_FILES = ("selection.json", "metrics.csv", "decoding.csv")
RESULT_GLOBS = ("ranking/epoch_*.csv",)


def reproduction_directory(original: Path) -> Path:
    """Beside the run, or beside its experiment (``DIR-reproduce/<trial>``), never inside an experiment
    directory, whose report would count the reproduction as one more group."""
    parent = original.resolve().parent
    if (parent / EXPERIMENT_RECORD).is_file():
        return original.parent.with_name(original.parent.name + "-reproduce") / original.name
    return original.with_name(original.name + "-reproduce")


def use_recorded_threads(run_dir: str | Path) -> int | None:
    """Run with the original's torch thread count: on CPU, float reductions (and so every number
    after the first step) depend on it. From run.json, or the runner's trial.json; None if unknown."""
    import torch

    run_dir = Path(run_dir)
    for name, key in (("run.json", "torch_threads"), (TRIAL_RECORD, "threads")):
        try:
            threads = json.loads((run_dir / name).read_text()).get(key)
        except (OSError, ValueError):
            continue
        if isinstance(threads, int) and threads > 0:
            if threads != torch.get_num_threads():
                print(f"[lightning_nas] reproduce: using {threads} torch thread(s) as the original run did", flush=True)
                torch.set_num_threads(threads)
            return threads
    return None


def result_files(run_dir: Path) -> list[str]:
    names = [name for name in RESULT_FILES if (run_dir / name).is_file()]
    for pattern in RESULT_GLOBS:
        names += sorted(str(p.relative_to(run_dir)) for p in run_dir.glob(pattern))
    return names


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


def _cells(path: Path) -> dict[str, str]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return {}
    header = rows[0]
    return {f"row {i} {column}": value for i, row in enumerate(rows[1:], start=1)
            for column, value in zip(header, row, strict=True)} | {"columns": ",".join(header), "rows": str(len(rows) - 1)}


def values(path: Path) -> dict[str, Any]:
    return _flatten(json.loads(path.read_text())) if path.suffix == ".json" else _cells(path)


def compare_runs(original: Path, rerun: Path) -> dict[str, Any]:
    """Every result value of both runs, compared exactly; ``identical`` and the list of differences."""
    names = sorted(set(result_files(original)) | set(result_files(rerun)))
    differences: list[str] = []
    compared = 0
    for name in names:
        a, b = original / name, rerun / name
        if not (a.is_file() and b.is_file()):
            differences.append(f"{name}: only in {'the original' if a.is_file() else 'the rerun'}")
            continue
        va, vb = values(a), values(b)
        compared += len(va)
        for key in sorted(set(va) | set(vb)):
            if va.get(key, "<missing>") != vb.get(key, "<missing>"):
                differences.append(f"{name} {key}: {va.get(key, '<missing>')!r} != {vb.get(key, '<missing>')!r}")
    notes = []
    try:
        ra, rb = (json.loads((d / "run.json").read_text()) for d in (original, rerun))
        for key in ("versions", "git", "platform", "torch_threads"):
            if ra.get(key) != rb.get(key):
                notes.append(f"run.json {key} differs: {ra.get(key)} -> {rb.get(key)}")
        if (rb.get("git") or {}).get("dirty"):
            notes.append("the rerun's work tree has uncommitted changes (run.json git.dirty)")
    except (OSError, ValueError):
        notes.append("run.json missing in one of the runs")
    return {"original": str(original), "rerun": str(rerun), "identical": not differences and bool(names),
            "files": names, "values_compared": compared, "differences": differences, "notes": notes}


def print_comparison(result: dict[str, Any], limit: int = 20) -> None:
    if result["identical"]:
        print(f"[lightning_nas] reproduce: identical - {result['values_compared']} values in "
              f"{', '.join(result['files'])} match {result['original']}")
    elif not result["files"]:
        print("[lightning_nas] reproduce: nothing to compare (no result files in either run)")
    else:
        diffs = result["differences"]
        print(f"[lightning_nas] reproduce: DIFFERENT - {len(diffs)} of {result['values_compared']} values differ "
              f"from {result['original']}:")
        print("\n".join(f"  {d}" for d in diffs[:limit]) + (f"\n  ... and {len(diffs) - limit} more" if len(diffs) > limit else ""))
    for note in result["notes"]:
        print(f"  note: {note}")


def report(original: Path, rerun: Path) -> bool:
    """Compare, print, and keep the comparison in the rerun's directory."""
    result = compare_runs(original, rerun)
    print_comparison(result)
    atomic_write_json(rerun / "reproduce.json", result)
    return result["identical"]
