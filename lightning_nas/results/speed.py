"""Tables of the shipped speed records for the generated blocks ``speed/NAME`` of docs/benchmarks.md:
``results/speed/operators.json`` (written by ``speed/strategy_step_time.py --record``) for the block
``speed/operators``, and ``results/speed/darts_rnn_authors.json`` (written by
``speed/darts_rnn_authors.py --record``) for the block ``speed/darts_rnn_authors``.

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

#: the records' files in ``results/speed/``
RECORD = "operators.json"
AUTHORS_RECORD = "darts_rnn_authors.json"
#: how the spaces are named in the tables, in their column order
SPACES = {"nb201": "NB201", "darts_cnn": "DARTS CNN", "darts_rnn": "DARTS RNN", "nb1shot1": "NB1Shot1"}


#: per record file: the script that writes it, and the object of its entries
WRITERS = {RECORD: ("strategy_step_time.py", "spaces", "space"),
           AUTHORS_RECORD: ("darts_rnn_authors.py --darts DARTS", "shapes", "shape")}


def load(folder: Path, name: str = RECORD) -> dict[str, Any]:
    path = Path(folder) / name
    script, key, what = WRITERS[name]
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: cannot read the speed record ({error}); write it with "
                          f"`python speed/{script} ... --record results/speed/{name}`") from None
    if not isinstance(record, dict) or not isinstance(record.get(key), dict) or not record[key]:
        raise ReportError(f"{path}: no {what} measured (expected a '{key}' object)")
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


#: how the sides of ``darts_rnn_authors.json`` are named, in their row order
SIDES = {"ours": "ours", "before": "ours, before (`--before`)", "authors": "authors'"}
#: the agreement's modes, as the script names them, and as the table does
MODES = {"eval": "evaluation mode", "train (no dropout)": "training mode, no dropout"}


def _agreement(values: dict[str, float] | None) -> str:
    if values is None:
        return ""
    return f"{values['max_abs_difference']:.1e} ({values['relative']:.0e})"


def darts_rnn_authors(record: dict[str, Any]) -> str:
    """The first-order DARTS recurrent search step of this project against the authors' code, per
    shape and side: operators and matrix products per step and their ratio to the authors', the
    median over interleaved rounds of the step time's ratio to the authors', and the largest
    difference of the log-probabilities to the authors' (relative to their largest value); then per
    shape the rounds, threads, load, torch build, CPU kind and commits it was measured at."""
    from lightning_nas.run_record import cpu_kind_key

    head = ("| shape | side | operators / step | / authors' | matrix products / step | / authors' "
            "| time / authors' (median) | " + " | ".join(f"log-probabilities, {m}: largest difference (relative)"
                                                     for m in MODES.values()) + " |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(MODES)]
    notes = []
    for entry in record["shapes"].values():
        o = entry["options"]
        shape = f"hidden {o['hidden']}, tokens {o['batch']} x {o['bptt']}, vocabulary {o['vocab']}"
        sides = {s["side"]: s for s in entry["sides"]}
        authors = sides["authors"]
        for i, name in enumerate(sorted(sides, key=lambda n: list(SIDES).index(n) if n in SIDES else len(SIDES))):
            side = sides[name]
            agreement = [_agreement(entry["agreement"].get(mode, {}).get(name)) for mode in MODES]
            lines.append(f"| {shape if i == 0 else ''} | {SIDES.get(name, name)} | {side['operators']:,} | "
                         f"{side['operators'] / authors['operators']:.2f} | {side['matrix_products']:,} | "
                         f"{side['matrix_products'] / authors['matrix_products']:.2f} | "
                         f"{side['median_time_to_authors']:.2f} | " + " | ".join(agreement) + " |")
        env = entry["environment"]
        commit = (env.get("commit") or "unknown")[:7] + (" (uncommitted changes)" if env.get("dirty") else "")
        theirs = (entry.get("authors_code") or {}).get("commit")
        load = entry["load_average"]
        notes.append(f"- {shape}: {o['rounds']} interleaved rounds, {o['threads']} thread(s), load average "
                     f"{load['before'][0]:.2f} before and {load['after'][0]:.2f} after; torch {env.get('torch')}, "
                     f"CPU {cpu_kind_key(env.get('cpu')) or 'unknown'}, commit {commit}"
                     + (f", authors' code at {theirs[:7]}" if theirs else "") + ".")
    return "\n".join(lines + [""] + notes) + "\n"


#: the generated blocks ``speed/NAME``: the record each renders, and how
TABLES = {"operators": (RECORD, operators), "darts_rnn_authors": (AUTHORS_RECORD, darts_rnn_authors)}


def speed_block(folder: Path, table: str) -> str:
    if table not in TABLES:
        raise ReportError(f"generated block 'speed/{table}': no such speed table (tables: {', '.join(TABLES)})")
    name, render = TABLES[table]
    record = load(folder, name)
    try:
        return render(record)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as error:
        raise ReportError(f"{Path(folder) / name}: malformed speed record for the block 'speed/{table}' "
                          f"({type(error).__name__}: {error}); write it again with "
                          f"`python speed/{WRITERS[name][0]} ... --record results/speed/{name}`") from None
