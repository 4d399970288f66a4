"""One repetition of a black-box optimiser on a table problem: the incumbent after every query.

The optimiser sees only the validation fitness (``TableProblem.fitness``); the incumbent is the
queried cell with the best validation value so far (the first of equals), and only its test metric is
reported. A multi-fidelity optimiser (BOHB) queries at its ``fidelity``: the validation value and
seconds of that epoch budget, the test metric of the final one; the incumbent is the best validation
over all budgets, as in Ying et al.'s released NAS-Bench-101 wrappers (automl/nas_benchmarks). t_sim adds the training time of every query, repeated cells included (each query is a
training in the world the table stands for; NAS-Bench-1Shot1 Sec. 5.4).
"""
from __future__ import annotations

import math
from typing import Any, Optional

from lightning_nas.blackbox.optimizers import build_optimizer
from lightning_nas.blackbox.problem import TableProblem
from lightning_nas.blackbox.trajectory import record
from lightning_nas.seeding import generator


def run(problem: TableProblem, optimizer: str, seed: int, repetition: int, budget_s: Optional[float] = None,
        max_queries: Optional[int] = None, options: Optional[dict[str, Any]] = None,
        method: Optional[str] = None, every_query: bool = False) -> list[dict[str, Any]]:
    """Query until t_sim reaches ``budget_s`` or ``max_queries`` queries were made (at least one bound);
    returns the trajectory records: one per query with ``every_query``, else only the queries that
    changed the incumbent and the last one (readers carry the incumbent forward: the same curve in a
    fraction of the lines)."""
    if budget_s is None and max_queries is None:
        raise ValueError("budget_s or max_queries must be set: a search needs a budget")
    stream = generator(seed, "blackbox", optimizer, repetition)
    search = build_optimizer(optimizer, problem.space, stream, options, problem.budgets)
    label = method or optimizer
    out: list[dict[str, Any]] = []
    t_sim, incumbent, queries, changed = 0.0, None, 0, False
    while (max_queries is None or queries < max_queries) and (budget_s is None or t_sim < budget_s):
        arch = search.ask()
        query = problem.query(arch, search.fidelity)
        search.tell(arch, problem.fitness(query.valid))  # validation only: the test metric stays here
        queries += 1
        t_sim += query.seconds
        changed = incumbent is None or problem.better(query.valid, incumbent.valid)
        if changed:
            incumbent = query
        if changed or every_query:
            out.append(record(label, repetition, t_sim, incumbent.valid, incumbent.test,
                              problem.test_regret(incumbent.test)))
    if incumbent is not None and not changed and not every_query:  # the end of the repetition
        out.append(record(label, repetition, t_sim, incumbent.valid, incumbent.test,
                          problem.test_regret(incumbent.test)))
    return out


def compact(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One repetition's every-query records as ``run`` writes them without ``every_query``: the records
    whose incumbent differs from the previous one's, and the last (the same curve)."""
    def incumbent(r: dict[str, Any]) -> tuple:
        return r["valid"], r["test"], r["test_regret"]

    return [r for i, r in enumerate(records)
            if i == 0 or i == len(records) - 1 or incumbent(r) != incumbent(records[i - 1])]


def final_regrets(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """method -> the last test regret of each repetition."""
    from lightning_nas.blackbox.trajectory import runs

    return {m: [reps[r][-1]["test_regret"] for r in sorted(reps)] for m, reps in runs(records).items()}


def finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]
