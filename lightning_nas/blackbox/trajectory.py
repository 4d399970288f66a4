"""The one record format of anytime trajectories: ``results/<name>/trajectories.jsonl``.

One JSON object per line, each the incumbent after one query of a black-box optimiser (or a one-shot
run's answer at its simulated time, written by the tuning experiments)::

    {"method": str, "repetition": int, "t_sim": float seconds, "valid": float, "test": float,
     "test_regret": float}

``t_sim`` is simulated wall-clock (NAS-Bench-1Shot1 Sec. 5.4: the summed training time of the
queried cells, or t_search + t_train of a one-shot run), ``valid`` the incumbent's validation metric
(what chose it), ``test`` and ``test_regret`` its test metric and distance to the table's best.
Further fields are allowed (a tuning trial may name its configuration) and ignored by the figures.
Within a (method, repetition) the lines are in the order of t_sim. A writer may leave out the lines
whose incumbent equals the previous line's, except each repetition's last (the black-box search does,
``search.run``): readers carry the incumbent forward in time (``value_at``), so the curve is the same.
Numbers are rounded to 6 decimals (t_sim to 4), the precision of the tables.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from lightning_nas.errors import RecipeError

FIELDS: dict[str, type | tuple[type, ...]] = {"method": str, "repetition": int, "t_sim": (int, float),
                                              "valid": (int, float), "test": (int, float),
                                              "test_regret": (int, float)}


class TrajectoryError(RecipeError):
    """A trajectory file that is not in the format; the message names the file and line."""


def check(record: Any, where: str = "record") -> dict[str, Any]:
    """``record`` if it has exactly the fields with their types and finite numbers; else one line saying why."""
    if not isinstance(record, dict):
        raise TrajectoryError(f"{where}: a trajectory record must be a JSON object, got {type(record).__name__}")
    missing = [f for f in FIELDS if f not in record]
    if missing:  # further fields (a tuning trial's configuration, say) are allowed and ignored
        raise TrajectoryError(f"{where}: a trajectory record needs {', '.join(FIELDS)}; missing {', '.join(missing)}")
    for name, kind in FIELDS.items():
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise TrajectoryError(f"{where}: {name}={value!r} must be {getattr(kind, '__name__', 'a number')}")
        if kind is not str and kind is not int and not math.isfinite(value):
            raise TrajectoryError(f"{where}: {name}={value!r} must be finite")
    if record["t_sim"] < 0:
        raise TrajectoryError(f"{where}: t_sim={record['t_sim']!r} must be >= 0 seconds")
    return record


def record(method: str, repetition: int, t_sim: float, valid: float, test: float, test_regret: float) -> dict[str, Any]:
    """One checked record (numbers as floats)."""
    return check({"method": str(method), "repetition": int(repetition), "t_sim": round(float(t_sim), 4),
                  "valid": round(float(valid), 6), "test": round(float(test), 6),
                  "test_regret": round(float(test_regret), 6)})


def write(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write ``records`` (checked) to ``path``, one compact line each, atomically."""
    from lightning_nas.io import atomic_write_text

    lines = [json.dumps(check(r, f"record {i}"), separators=(", ", ": ")) for i, r in enumerate(records)]
    target = Path(path)
    atomic_write_text(target, "".join(line + "\n" for line in lines))
    return target


def read(path: str | Path) -> list[dict[str, Any]]:
    """The records of ``path``; a missing file, a line that is not JSON or a record not in the format is
    one ``TrajectoryError`` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise TrajectoryError(f"{path}: cannot read the trajectories ({error.strerror or error})") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise TrajectoryError(f"{path}:{number}: not JSON ({error.msg}); each line must be one trajectory "
                                  "record") from None
        out.append(check(value, f"{path}:{number}"))
    previous: dict[tuple[str, int], float] = {}
    for r in out:
        run = (r["method"], r["repetition"])
        if run in previous and r["t_sim"] < previous[run]:
            raise TrajectoryError(f"{path}: {r['method']} repetition {r['repetition']}: t_sim goes back in time "
                                  f"({previous[run]} then {r['t_sim']})")
        previous[run] = r["t_sim"]
    return out


def runs(records: Iterable[dict[str, Any]]) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """method -> repetition -> its records in t_sim order (methods in order of first appearance)."""
    out: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for r in records:
        out.setdefault(r["method"], {}).setdefault(r["repetition"], []).append(r)
    for method in out.values():
        for rep in method.values():
            rep.sort(key=lambda r: r["t_sim"])
    return out


def value_at(run: list[dict[str, Any]], t: float, field: str = "test_regret") -> float:
    """The incumbent's ``field`` at simulated time ``t`` (the last record with t_sim <= t; nan before the first)."""
    value = math.nan
    for r in run:
        if r["t_sim"] > t:
            break
        value = r[field]
    return value
