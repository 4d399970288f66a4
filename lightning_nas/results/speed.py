"""Tables of the shipped speed record ``results/speed/operators.json`` (written by
``speed/strategy_step_time.py --record``), for the generated block ``speed/operators`` of
docs/benchmarks.md.

Operator counts are exact: one step of one strategy dispatches the same operators on every run of
one commit and torch build, so the table states the build and commit it was counted at. The record
also keeps the run's times with the CPU, threads and load average they depend on; they are not
published (a step at the small counting shapes, on a shared machine, measures little).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning_nas.report.common import ReportError

#: the record's file in ``results/speed/``
RECORD = "operators.json"
#: how the spaces are named in the tables, in their column order
SPACES = {"nb201": "NB201", "darts_cnn": "DARTS CNN", "darts_rnn": "DARTS RNN", "nb1shot1": "NB1Shot1"}


def load(folder: Path) -> dict[str, Any]:
    path = Path(folder) / RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: cannot read the speed record ({error}); write it with "
                          "`python speed/strategy_step_time.py ... --record results/speed/operators.json`") from None
    if not record.get("spaces"):
        raise ReportError(f"{path}: no space measured (expected a 'spaces' object)")
    return record


def _spaces(record: dict[str, Any]) -> list[str]:
    return sorted(record["spaces"], key=lambda s: (list(SPACES).index(s) if s in SPACES else len(SPACES), s))


def _labels(record: dict[str, Any]) -> list[str]:
    labels: list[str] = []
    for space in _spaces(record):
        labels += [r["label"] for r in record["spaces"][space]["strategies"] if r["label"] not in labels]
    return labels


def _row(entry: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((r for r in entry["strategies"] if r["label"] == label), None)


def _shape(entry: dict[str, Any]) -> str:
    o = entry["options"]
    if o["space"] == "darts_rnn":
        shape = f"tokens {o['batch']} x {o['bptt']}, hidden {o['hidden']}, vocabulary {o['vocab']}"
    else:
        shape = f"batch {o['batch']} x 3 x {o['image']}^2" + (f", C={o['C']}, N={o['N']}" if o["space"] == "nb201" else "")
    extra = [f"{key} `{o[key]}`" for key in ("space_options", "network") if o.get(key, "{}") != "{}"]
    return ", ".join([shape] + extra)


def operators(record: dict[str, Any]) -> str:
    """Operators (and matrix products among them) per training step, per strategy and space, and the
    ratio to SPOS; then per space the shapes, the torch build and the commit counted at."""
    spaces = _spaces(record)
    head = "| strategy | " + " | ".join(f"{SPACES.get(s, s)}: operators (matrix products) | / SPOS" for s in spaces) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(spaces)]
    for label in _labels(record):
        cells = []
        for space in spaces:
            entry = record["spaces"][space]
            row, spos = _row(entry, label), _row(entry, "SPOS")
            if row is None or "unsupported" in row:
                cells += ["unsupported" if row else "-", ""]
                continue
            ratio = f"{row['operators'] / spos['operators']:.2f}" if spos and "operators" in spos else ""
            cells += [f"{row['operators']:,} ({row['matrix_products']:,})", ratio]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for space in spaces:
        entry = record["spaces"][space]
        env = entry["environment"]
        commit = (env.get("commit") or "unknown")[:7] + (" (uncommitted changes)" if env.get("dirty") else "")
        lines.append(f"- {SPACES.get(space, space)}: {_shape(entry)}; torch {env.get('torch')}, commit {commit}.")
    return "\n".join(lines) + "\n"


#: the generated blocks ``speed/NAME``
TABLES = {"operators": operators}


def speed_block(folder: Path, table: str) -> str:
    if table not in TABLES:
        raise ReportError(f"generated block 'speed/{table}': no such speed table (tables: {', '.join(TABLES)})")
    return TABLES[table](load(folder))
