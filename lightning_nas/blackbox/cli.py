"""``python -m lightning_nas.blackbox --recipe R --optimizer NAME [--repetitions 20] [--budget_s S]``.

Runs ``--repetitions`` repetitions of one optimiser on one table problem and writes the incumbent
after every query to ``OUT/trajectories.jsonl`` (``trajectory.py``), replacing that method's earlier
lines and keeping other methods', so several optimisers build one results folder. ``OUT/experiment.json``
records the problem (its tables and their sha256), each method's settings, seed and command: what
``python -m lightning_nas.results render`` needs to draw the anytime figure and table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ActionConfigFile, ArgumentParser

from lightning_nas.blackbox.problem import Tables
from lightning_nas.errors import LightningNASError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m lightning_nas.blackbox", exit_on_error=False,
                            description="Discrete black-box NAS on a table benchmark; writes anytime trajectories.")
    parser.add_argument("--recipe", "-c", action=ActionConfigFile, help="A YAML file of these options.")
    parser.add_argument("--benchmark", type=Tables, required=True,
                        help="Where the validation, test and training-time values live: "
                             "{class_path: lightning_nas.blackbox.CSVTables | NB101Tables, init_args: {...}}.")
    parser.add_argument("--optimizer", type=str, default="random_search",
                        help="random_search, regularized_evolution, reinforce or bohb (lightning_nas.blackbox.OPTIMIZERS).")
    parser.add_argument("--optimizer_options", type=dict, default={},
                        help="Keyword arguments of the optimiser (population, sample_size, lr, min_budget, eta, ...).")
    parser.add_argument("--method", type=Optional[str], default=None,
                        help="The method's name in the records (default: the optimiser's).")
    parser.add_argument("--seed", type=int, default=0, help="Repetition r draws from generator(seed, 'blackbox', optimizer, r).")
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--budget_s", type=Optional[float], default=None,
                        help="Simulated seconds per repetition: query until t_sim reaches it.")
    parser.add_argument("--max_queries", type=Optional[int], default=None, help="Queries per repetition.")
    parser.add_argument("--out", type=str, default="results/blackbox",
                        help="The results folder (trajectories.jsonl and experiment.json).")
    return parser


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spec(tables: Tables) -> dict[str, Any]:
    """The Tables object as {class_path, init_args} (what render rebuilds the problem from)."""
    cls = type(tables)
    return {"class_path": f"{cls.__module__.replace('.problem', '')}.{cls.__name__}", "init_args": dict(vars(tables))}


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        config = parser.parse_args(argv)
        init = parser.instantiate(config) if hasattr(parser, "instantiate") else parser.instantiate_classes(config)
        path = run(init.benchmark, config, argv)
    except (LightningNASError, ValueError, LookupError, OSError, argparse.ArgumentError) as error:
        message = " ".join(str(error).split())
        print(f"blackbox: error: {message}", file=sys.stderr)
        return 2
    print(f"[lightning_nas] trajectories written to {path}")
    return 0


def run(tables: Tables, config: Any, argv: list[str]) -> Path:
    from lightning_nas.blackbox import search, trajectory

    if config.repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, got {config.repetitions}")
    if config.budget_s is None and config.max_queries is None:
        raise ValueError("set budget_s (simulated seconds) or max_queries: a search needs a budget")
    problem = tables.build()
    method = config.method or config.optimizer
    records: list[dict[str, Any]] = []
    cpu, queries = time.process_time(), 0
    for repetition in range(config.repetitions):
        run_records = search.run(problem, config.optimizer, config.seed, repetition, config.budget_s,
                                 config.max_queries, dict(config.optimizer_options), method, every_query=True)
        queries += len(run_records)
        records += search.compact(run_records)
    cpu = time.process_time() - cpu
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    file = out / "trajectories.jsonl"
    earlier = trajectory.read(file) if file.is_file() else []
    order = list(dict.fromkeys([r["method"] for r in earlier] + [method]))  # a rerun method keeps its place
    combined = [r for r in earlier if r["method"] != method] + records
    trajectory.write(file, sorted(combined, key=lambda r: order.index(r["method"])))  # stable within a method
    _record_experiment(out, tables, problem, config, method, argv, cpu / max(queries, 1))
    return file


def _record_experiment(out: Path, tables: Tables, problem: Any, config: Any, method: str, argv: list[str],
                       cpu_per_query: float) -> None:
    from lightning_nas.blackbox.optimizers import build_optimizer
    from lightning_nas.io import atomic_write_json
    from lightning_nas.run_record import cpu_kind, git_state, package_versions
    from lightning_nas.seeding import generator

    path = out / "experiment.json"
    experiment = json.loads(path.read_text()) if path.is_file() else {}
    spec = _spec(tables)
    if experiment.get("tables") not in (None, spec):
        raise ValueError(f"{path}: its methods were run on another benchmark ({experiment['tables']}); "
                         "choose another --out")
    settings = build_optimizer(config.optimizer, problem.space, generator(0), dict(config.optimizer_options),
                               problem.budgets).settings()
    sources = [{"file": p.name, "sha256": _sha256(p)} for p in tables.sources()]
    experiment.update(name=out.name, kind="blackbox", tables=spec, sources=sources, problem=problem.describe(),
                      complete=len(problem.test) == problem.space.size)
    test = spec["init_args"].get("test_metric")
    if isinstance(test, str):  # what Records.policy() reads: the test table of a complete benchmark
        experiment["benchmark"] = {"table": Path(str(spec["init_args"]["table"])).name, "metric": test,
                                   "higher_is_better": problem.higher_is_better, "complete": experiment["complete"],
                                   "sha256": sources[0]["sha256"], "size": len(problem.test)}
    methods = experiment.setdefault("methods", {})
    methods[method] = {"optimizer": config.optimizer, "settings": settings, "seed": config.seed,
                       "repetitions": config.repetitions, "budget_s": config.budget_s,
                       "max_queries": config.max_queries,
                       "command": ["python", "-m", "lightning_nas.blackbox", *argv],
                       # the search's own cost (optimiser and look-ups), not simulated: BOHB's overhead per query
                       "cpu_seconds_per_query": round(cpu_per_query, 6),
                       # what made the numbers (issue 19's records): the code's commit (the results folder this
                       # command writes does not count as a change), versions, CPU kind
                       "environment": {"git": git_state(outputs=(out,)), "versions": package_versions(),
                                       "cpu": cpu_kind()}}
    atomic_write_json(path, experiment)
