"""The objective of a tuning trial: the benchmark's VALIDATION metric of the run's own answer.

NAS-Bench-1Shot1 (Zela et al. 2020), Sec. 5.4 and App. F.1: tuning with the one-shot validation error
would pick configurations that overfit the one-shot model, so BOHB optimises the validation error the
benchmark (NAS-Bench-101) gives the architecture each search returned; the test error is only reported.
The answer is the strategy's own (``selection.json``: the decoded cell for DARTS, GDAS, PC-DARTS, the
shared-weight selection for SPOS); its test value and test regret come from the run's own benchmark
(``selection.json``'s ``ground_truth`` and ``regret``), its validation value from a validation table,
or, where that table lacks the cell, from training the cell once with the table's tabulation protocol
(``on_demand``; cached per experiment).
"""
from __future__ import annotations

import csv
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Optional

from lightning_nas.tuning.settings import Objective, TuningError

CACHE = "validation_cache.jsonl"


def read_answer(run_dir: Path) -> dict[str, Any]:
    """The run's answer (``selection.json``): architecture, test ground truth and test regret."""
    path = run_dir / "selection.json"
    try:
        selection = json.loads(path.read_text())
    except (OSError, ValueError):
        raise TuningError(f"{path}: no final selection; the trial's run did not finish") from None
    return {"architecture": selection["architecture"], "test": selection.get("ground_truth"),
            "test_regret": selection.get("regret"), "answer_source": selection.get("answer_source")}


def _table_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["ArchitectureString"]: row for row in csv.DictReader(handle)}


class Validation:
    """Looks up (or trains, once) the validation metric of an architecture; also its training time."""

    def __init__(self, objective: Objective, experiment_dir: Path) -> None:
        self.objective = objective
        self.cache_path = experiment_dir / CACHE
        self.rows: dict[str, dict[str, str]] = {}
        self.table: Optional[Path] = None
        if objective.table is not None:
            from lightning_nas.benchmarks.tabulated import resolve_table
            from lightning_nas.errors import GroundTruthError

            try:
                self.table = resolve_table(objective.table)
            except GroundTruthError as error:
                if objective.on_demand is None:
                    raise TuningError(f"objective.table: {error}") from None
            if self.table is not None:
                self.rows = _table_rows(self.table)
                if self.rows and objective.metric not in next(iter(self.rows.values())):
                    raise TuningError(f"objective.metric {objective.metric} is not a column of {self.table}")
        self.times: dict[str, dict[str, str]] = {}
        if objective.times is not None and Path(objective.times).is_file():
            self.times = _table_rows(Path(objective.times))
        self.problem = None
        if objective.benchmark is not None:
            from lightning_nas.blackbox.problem import build_tables
            from lightning_nas.errors import GroundTruthError

            try:
                self.problem = build_tables(objective.benchmark).build()
            except (GroundTruthError, ValueError, TypeError, LookupError) as error:
                raise TuningError(f"objective.benchmark: {' '.join(str(error).split())}") from None
            if self.problem.higher_is_better != (objective.mode == "max"):
                raise TuningError(f"objective.mode {objective.mode}: the benchmark's validation metric is "
                                  f"{'higher' if self.problem.higher_is_better else 'lower'} is better")

    def __call__(self, architecture: str) -> dict[str, Any]:
        """{valid, train_seconds, valid_source} of one architecture."""
        if self.problem is not None:
            return self._from_problem(architecture)
        row = self.rows.get(architecture)
        seconds = self._seconds(architecture)
        if row is not None and row.get(self.objective.metric) not in (None, ""):
            return {"valid": float(row[self.objective.metric]), "train_seconds": seconds,
                    "valid_source": str(self.table.name if self.table else "")}
        if self.objective.on_demand is None:
            raise TuningError(f"objective: {architecture} is not in {self.table}, and no on_demand recipe "
                              "trains missing cells")
        cached = self._cached(architecture)
        if cached is None:
            cached = self._train(architecture)
        return {"valid": cached["value"], "valid_source": f"trained on demand ({self.objective.on_demand})",
                "train_seconds": seconds if seconds is not None else cached["seconds"]}

    def _from_problem(self, architecture: str) -> dict[str, Any]:
        """The benchmark problem's validation metric, training time, test metric and test regret of the
        answer (its final budget): one problem selects, times and reports a tuned run as it does the
        discrete optimisers (NAS-Bench-1Shot1 Sec. 5.4), so their trajectories compare; the run's own
        benchmark (``selection.json``) may report another test column."""
        from lightning_nas.errors import ArchitectureError, GroundTruthError

        problem = self.problem
        try:
            query = problem.query(problem.space.parse(architecture))
        except (ArchitectureError, GroundTruthError) as error:
            raise TuningError(f"objective.benchmark: {' '.join(str(error).split())}") from None
        return {"valid": query.valid, "train_seconds": query.seconds, "valid_source": _described(problem.valid),
                "test": query.test, "test_regret": problem.test_regret(query.test),
                "test_source": _described(problem.test)}

    def _seconds(self, architecture: str) -> Optional[float]:
        row = self.times.get(architecture)
        value = row.get("train_seconds_mean") if row else None
        return float(value) if value not in (None, "") else None

    def _cached(self, architecture: str) -> Optional[dict[str, Any]]:
        try:
            lines = self.cache_path.read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut by a kill
                continue
            if entry.get("architecture") == architecture and entry.get("metric") == self.objective.metric \
                    and entry.get("recipe") == self.objective.on_demand:
                return entry
        return None

    def _train(self, architecture: str) -> dict[str, Any]:
        """Train the cell with the tabulation protocol, every seed of the recipe, as a table row would."""
        from lightning_nas.tabulate.options import build_parser, validate
        from lightning_nas.tabulate.training import train_one

        config = build_parser().parse_args(["--recipe", str(self.objective.on_demand)])
        validate(config)
        if "val" not in config.evaluate:
            raise TuningError(f"objective.on_demand {self.objective.on_demand}: evaluate must include val")
        from lightning_nas.experiments.runner import output_to
        from lightning_nas.run.output import quiet_third_parties

        import torch

        name = self.objective.metric.removesuffix("_mean")
        start, values, threads = time.perf_counter(), [], torch.get_num_threads()
        for seed in config.seeds:
            torch.set_num_threads(config.threads or threads)  # the table's thread count: its numbers depend on it
            try:
                with output_to(self.cache_path.with_suffix(".log")), quiet_third_parties():
                    metrics, _ = train_one(config, architecture, seed)
            finally:
                torch.set_num_threads(threads)
            if name not in metrics:
                raise TuningError(f"objective.metric {self.objective.metric}: the on_demand recipe gives "
                                  f"{', '.join(sorted(metrics))} per seed")
            values.append(metrics[name])
        seconds = (time.perf_counter() - start) / len(config.seeds)
        entry = {"architecture": architecture, "metric": self.objective.metric, "value": statistics.fmean(values),
                 "seeds": list(config.seeds), "seconds": seconds, "recipe": self.objective.on_demand}
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache_path, "a") as handle:  # one short line per write: appends do not interleave
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return entry


def _described(benchmark: Any) -> str:
    """``table.csv: column`` of one of a problem's benchmarks (where a looked-up value came from)."""
    return f"{Path(str(getattr(benchmark, 'source', benchmark))).name}: {getattr(benchmark, 'metric', '')}"


def evaluate_answer(run_dir: Path, validation: Validation) -> dict[str, Any]:
    """The trial's result at its current budget: answer, validation (the objective), test, test regret."""
    answer = read_answer(run_dir)
    return {**answer, **validation(answer["architecture"])}
