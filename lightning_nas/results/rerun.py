"""Does a shipped result regenerate? Compare a rerun's record with the shipped one, only where a
bit-identical result can be expected: the same torch build, the same CPU kind (vendor, model,
instruction set torch dispatches to) and the same thread count (docs/experiments.md, "What
bit-identical covers"). Elsewhere the numbers may legitimately differ (the issue reporters' machines
gave another quickstart rank than the shipped record's CPU kind), so the comparison is skipped with
the reason.
"""
from __future__ import annotations

from typing import Any

from lightning_nas.run_record import cpu_kind_key

#: what a rerun must reproduce exactly (paths into a trial record)
COMPARED = (("answer", "architecture"), ("answer", "rank"), ("answer", "ground_truth"))


def comparable(shipped: dict[str, Any], here: dict[str, Any]) -> tuple[bool, str]:
    """(True, "") when the two environments should give bit-identical numbers, else (False, why not)."""
    a, b = shipped.get("environment") or {}, here.get("environment") or {}
    for what, x, y in (("torch build", a.get("torch"), b.get("torch")),
                       ("CPU kind", cpu_kind_key(a.get("cpu")), cpu_kind_key(b.get("cpu"))),
                       ("torch threads", a.get("threads"), b.get("threads"))):
        if x is None or x != y:
            return False, f"{what} differs (shipped {x}, here {y}): results are bit-identical only on the same one"
    return True, ""


def differences(shipped: dict[str, Any], rerun: dict[str, Any]) -> list[str]:
    """Every published number of the trial that the rerun does not reproduce exactly."""
    out = []
    for path in COMPARED:
        x, y = shipped, rerun
        for key in path:
            x, y = (x or {}).get(key), (y or {}).get(key)
        if x != y:
            out.append(f"{'.'.join(path)}: shipped {x}, rerun {y}")
    a, b = shipped["ranking"]["epochs"], rerun["ranking"]["epochs"]
    if [e["epoch"] for e in a] != [e["epoch"] for e in b]:
        return [*out, "ranking epochs differ"]
    for x, y in zip(a, b, strict=True):
        for score in ("by_accuracy", "by_loss"):
            for metric, value in (x.get(score) or {}).items():
                if (y.get(score) or {}).get(metric) != value:
                    out.append(f"epoch {x['epoch']} {score} {metric}: shipped {value}, rerun "
                               f"{(y.get(score) or {}).get(metric)}")
    return out
