"""Reading trial run directories and grouping them by strategy and factor values."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from lightning_nas.experiments.design import short_value
from lightning_nas.metrics import DEFAULT_SPARSE_VARIANT, ranking_agreement
from lightning_nas.report import rescore
from lightning_nas.report.common import NAN, ReportError

if TYPE_CHECKING:
    from lightning_nas.benchmarks.base import TableBenchmark


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return NAN


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass
class Run:
    """One run directory's numbers, as the report needs them."""

    path: Path
    name: str
    seed: Optional[int]
    strategy: str
    factors: dict[str, str]
    status: str
    loggers: list[str] = field(default_factory=list)
    wandb_project: str = "lightning_nas"
    final: dict[str, float] = field(default_factory=dict)
    ranking_history: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> epoch -> value
    ranking_table: list[tuple[float, float]] = field(default_factory=list)  # (score, truth), last ranking epoch
    regret: dict[int, float] = field(default_factory=dict)  # epoch -> mean test regret (decoding.csv)
    answer_source: str = ""  # selection.json "answer_source": what the headline architecture is
    table_size: float = NAN  # architectures in the ground-truth table (r_max of p(beat random))
    unit: str = ""  # unit of the ground truth ("%" for an accuracy table), for axis labels


def load_run(path: Path, table: Optional["TableBenchmark"] = None) -> Run:
    """A run's numbers; with ``table`` its recorded architectures are looked up in that table instead
    of using the ground truth the run recorded (``report/rescore.py``)."""
    import yaml

    trial = json.loads((path / "trial.json").read_text()) if (path / "trial.json").is_file() else {}
    config = yaml.safe_load((path / "config.yaml").read_text()) if (path / "config.yaml").is_file() else {}
    config = config or {}
    model = config.get("model") or {}
    strategy = str(model.get("class_path", "?")).rsplit(".", 1)[-1] if isinstance(model, dict) else "?"
    selection = json.loads((path / "selection.json").read_text()) if (path / "selection.json").is_file() else {}
    status = trial.get("status") or ("finished" if selection else "unfinished")
    seed = trial.get("seed", config.get("seed_everything"))
    run = Run(path, trial.get("name", path.name), seed, strategy, {k: str(v) for k, v in trial.get("factors", {}).items()},
              status, list(config.get("loggers") or []), str(config.get("wandb_project") or "lightning_nas"))
    find = rescore.look_up(table, config, str(path)) if table is not None else None

    history: dict[str, dict[int, float]] = {}
    for row in _read_csv(path / "metrics.csv"):
        for key, text in row.items():
            if key and key.startswith("ranking/") and text not in ("", None) and row.get("epoch"):
                history.setdefault(key.split("/", 1)[1], {})[int(float(row["epoch"]))] = float(text)
    tables = sorted((path / "ranking").glob("epoch_*.csv"))
    ranking = config.get("ranking") or {}
    threshold, variant = ranking.get("sparse_threshold", 0.1), ranking.get("sparse_variant", DEFAULT_SPARSE_VARIANT)
    if find is not None:  # every ranking epoch against the given table
        for csv_path in tables:
            rows = _read_csv(csv_path)
            truth = [find(r["architecture"]).get("ground_truth", NAN) for r in rows]
            scores = [_float(r.get("supernet_accuracy")) if ranking.get("score", "accuracy") == "accuracy"
                      else -_float(r.get("supernet_loss")) for r in rows]
            epoch = int(csv_path.stem.split("_")[-1])
            for metric in ("kendall_tau", "sparse_kendall_tau", "spearman"):
                history.get(metric, {}).pop(epoch, None)
            for metric, value in ranking_agreement(truth, scores, threshold, variant,
                                                   table.higher_is_better).items():
                history.setdefault(metric, {})[epoch] = value
            if csv_path == tables[-1]:
                run.ranking_table = [(_float(r.get("supernet_accuracy")), t) for r, t in zip(rows, truth, strict=True)]
    elif tables:
        rows = _read_csv(tables[-1])
        run.ranking_table = [(_float(r.get("supernet_accuracy")), _float(r.get("ground_truth"))) for r in rows]
        epoch = int(tables[-1].stem.split("_")[-1])
        _fill_from_table(history, epoch, run.ranking_table, threshold, variant,
                         higher_is_better=not rescore.is_loss(metric_name(config)))
    run.ranking_history = history

    by_epoch: dict[int, list[float]] = {}
    for row in _read_csv(path / "decoding.csv"):  # callbacks/decoding.py writes test_regret
        regret = (find(row["architecture"]).get("regret", NAN) if find is not None
                  else _float(row.get("test_regret", row.get("regret"))))
        if row.get("epoch") not in (None, "") and math.isfinite(regret):
            by_epoch.setdefault(int(float(row["epoch"])), []).append(regret)
    run.regret = {e: float(np.mean(v)) for e, v in sorted(by_epoch.items())}

    last = {key: values[max(values)] for key, values in history.items() if values}
    # selection.json: the top level is the strategy's own answer (decoded alpha, controller choice,
    # shared-weight pick, random draw; "answer_source" says which); "shared_weight_selection", when
    # present, is the shared-weight pick on the same super-net, reported separately
    shared = selection.get("shared_weight_selection")
    shared = shared if isinstance(shared, dict) else {}
    if find is not None:
        selection = {**selection, **rescore.answer(selection, find)}
        shared = {**shared, **rescore.answer(shared, find)} if shared else {}
    run.answer_source = str(selection.get("answer_source") or "")
    run.table_size = _float(selection.get("table_size"))
    run.unit = "" if rescore.is_loss(table.metric if table is not None else metric_name(config)) else "%"
    run.final = {"ground_truth": _float(selection.get("ground_truth")),
                 "sparse_kendall_tau": last.get("sparse_kendall_tau", NAN),
                 "kendall_tau": last.get("kendall_tau", NAN),
                 "supernet_accuracy": last.get("supernet_accuracy", NAN),
                 "rank": _float(selection.get("rank")),
                 "p_beat_random": _float(selection.get("p_beat_random")),
                 "selected_supernet_accuracy": _float(selection.get("supernet_val_accuracy")),
                 "sw_ground_truth": _float(shared.get("ground_truth")),
                 "sw_rank": _float(shared.get("rank"))}
    return run


def _fill_from_table(history: dict[str, dict[int, float]], epoch: int, table: list[tuple[float, float]],
                     threshold: float, variant: str = DEFAULT_SPARSE_VARIANT, higher_is_better: bool = True) -> None:
    """Runs that logged no ranking metrics (another logger) still have the ranking CSV."""
    scores = [s for s, _ in table]
    truth = [t for _, t in table]
    if scores and epoch not in history.get("supernet_accuracy", {}):
        history.setdefault("supernet_accuracy", {})[epoch] = float(np.mean(scores))
    if epoch not in history.get("kendall_tau", {}):
        for metric, value in ranking_agreement(truth, scores, threshold, variant, higher_is_better).items():
            history.setdefault(metric, {})[epoch] = value


def metric_name(config: dict[str, Any]) -> str:
    """The ground-truth column the run's recipe named (``benchmark.init_args.metric``; "" without one)."""
    benchmark = config.get("benchmark") if isinstance(config.get("benchmark"), dict) else {}
    return str((benchmark.get("init_args") or {}).get("metric", ""))


def find_runs(experiment_dir: Path, table: Optional["TableBenchmark"] = None) -> list[Run]:
    dirs = sorted(p for p in experiment_dir.iterdir() if p.is_dir() and (p / "config.yaml").is_file())
    if (experiment_dir / "config.yaml").is_file():
        dirs.insert(0, experiment_dir)
    return [load_run(d, table) for d in dirs]


@dataclass
class Group:
    strategy: str
    factors: tuple[tuple[str, str], ...]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The display name (``results/names.py``: "DARTS (2nd order)" for darts_2nd.yaml) and the
        factors that do not merely choose the strategy."""
        from lightning_nas.results.names import group_label

        return group_label(self.strategy, {k: short_value(v) if not str(v).endswith((".yaml", ".yml")) else v
                                           for k, v in self.factors})

    def values(self, metric: str) -> list[float]:
        return [r.final.get(metric, NAN) for r in self.runs]

    def by_seed(self, metric: str) -> dict[object, float]:
        """Seed -> value (runs without a seed are left out: they cannot be paired)."""
        return {r.seed: r.final.get(metric, NAN) for r in self.runs if r.seed is not None}

    @property
    def answer_source(self) -> str:
        return ", ".join(dict.fromkeys(r.answer_source for r in self.runs if r.answer_source))

    @property
    def table_size(self) -> float:
        sizes = [r.table_size for r in self.runs if math.isfinite(r.table_size)]
        return max(sizes) if sizes else NAN

    def p_beat_random_over_runs(self) -> float:
        """Yu et al.: r = the best rank over the group's runs, n = the number of runs with a rank."""
        from lightning_nas.metrics import p_beat_random_over_runs

        size = self.table_size
        return p_beat_random_over_runs(self.values("rank"), int(size)) if math.isfinite(size) else NAN


def factor_order(experiment_dir: Path, runs: list[Run]) -> dict[str, list[str]]:
    """Factor -> values in the experiment's order (the first value is the factor's baseline)."""
    order: dict[str, list[str]] = {}
    record = experiment_dir / "experiment.json"
    if record.is_file():
        for factor in json.loads(record.read_text()).get("grid", []):
            order[factor["label"]] = [str(v) for v in factor["values"]]
    for run in runs:
        for key, value in run.factors.items():
            values = order.setdefault(key, [])
            if value not in values:
                values.append(value)
    return order


def group_runs(runs: list[Run], order: dict[str, list[str]]) -> list[Group]:
    strategies = list(dict.fromkeys(r.strategy for r in runs))
    groups: dict[tuple, Group] = {}
    for run in runs:
        factors = tuple((k, run.factors.get(k, "-")) for k in order)
        groups.setdefault((run.strategy, factors), Group(run.strategy, factors)).runs.append(run)

    def position(group: Group) -> tuple:
        return ("random" in group.strategy.lower(), strategies.index(group.strategy),  # random last, as in Table 1
                *(order[k].index(v) if v in order[k] else len(order[k]) for k, v in group.factors))

    return sorted(groups.values(), key=position)


def baselines(groups: list[Group], chosen: Optional[str]) -> dict[str, Optional[Group]]:
    """Group label -> the group it is tested against (None for the baseline itself)."""
    if chosen is not None:
        match = [g for g in groups if g.label == chosen] or [g for g in groups if chosen in g.label]
        if len(match) != 1:
            raise ReportError(f"--baseline {chosen!r} matches {len(match)} groups; groups: "
                              + "; ".join(g.label for g in groups))
        return {g.label: None if g is match[0] else match[0] for g in groups}
    randoms = [g for g in groups if "random" in g.strategy.lower()]
    result: dict[str, Optional[Group]] = {}
    for g in groups:
        if randoms:
            # the random group sharing most factor values (a strategy factor itself never matches)
            closest = max(randoms, key=lambda r: sum(a == b for a, b in zip(r.factors, g.factors, strict=True)))
            result[g.label] = None if g in randoms else closest
        else:
            result[g.label] = None if g is groups[0] else groups[0]
    return result
