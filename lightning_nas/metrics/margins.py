"""How fragile a decoded answer is: the margin between the two largest normalised weights of each
decision (issue 19: final DARTS weights of 0.31-0.36 on every edge make the arg-max a near-tie).

A margin of 0 means the decoded operation is a tie; the answer changes with the last bits of the
weights. ``decision_margins`` names each decision ``group[row]`` (a softmax row: one edge's operations)
or ``group{start:end}`` (a segment of a vector group: one node's input edges).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping


def top_two_margin(weights: Iterable[float]) -> float:
    """Largest minus second-largest weight (the largest itself for a single option)."""
    values = sorted((float(w) for w in weights), reverse=True)
    if not values:
        raise ValueError("a decision needs at least one weight")
    return values[0] - (values[1] if len(values) > 1 else 0.0)


def decision_margins(groups: Iterable[Any], weights: Mapping[str, Any]) -> dict[str, float]:
    """Margins of every decision of normalised ``weights`` (name -> tensor), by the groups' shapes
    (``spaces.decisions.WeightGroup``: matrix rows, or segments of a vector)."""
    margins: dict[str, float] = {}
    for group in groups:
        if group.name not in weights:
            continue
        values = weights[group.name].detach().double().cpu()
        if values.dim() == 2:
            for row, vector in enumerate(values):
                margins[f"{group.name}[{row}]"] = top_two_margin(vector.tolist())
        else:
            for start, end in group.segments:
                if end - start > 1:
                    margins[f"{group.name}{{{start}:{end}}}"] = top_two_margin(values[start:end].tolist())
    return margins
