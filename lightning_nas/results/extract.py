"""One experiment directory -> a small shipped folder: ``results/<experiment>/``.

``python -m lightning_nas.results extract EXPERIMENT_DIR [--name NAME] [--out results]`` writes

- ``experiment.json``: the experiment (name, grid, seeds, where it came from) and its ground-truth table
  (shipped name, metric, orientation, size, sha256 of the CSV, and whether it is complete: its sidecar
  says ``"architectures": "all"``);
- ``trials.jsonl``: one JSON object per finished trial, sorted by trial name (``record_trial``).

Every number the docs publish about the experiment is computed from these two files by
``python -m lightning_nas.results render`` (``render.py``); a trial record is a few kB, so a
100-trial experiment ships in well under 1 MB.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lightning_nas.metrics import ranking_agreement
from lightning_nas.metrics.random_baseline import RandomPolicy
from lightning_nas.report.common import ReportError
from lightning_nas.results.names import group_label

RECORD_VERSION = 1


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _num(text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value


def _clean(value: Any) -> Any:
    """JSON without NaN (``null`` instead) and floats rounded to 6 decimals (the tables' precision)."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def distinct(values: list[float]) -> int:
    return len({v for v in values if math.isfinite(v)})


def agreement_by_score(truth: list[float], accuracy: list[float], loss: list[float], threshold: float,
                       higher_is_better: bool) -> dict[str, Any]:
    """The ranking's agreement with the ground truth by super-net accuracy and, where every loss is
    finite, by super-net loss (lower is better): ``{"by_accuracy": ..., "by_loss": ...}``."""
    out = {"by_accuracy": ranking_agreement(truth, accuracy, threshold, higher_is_better=higher_is_better)}
    if loss and all(math.isfinite(v) for v in loss):
        out["by_loss"] = ranking_agreement(truth, [-v for v in loss], threshold, higher_is_better=higher_is_better)
    return out


def ranking_epochs(run_dir: Path, threshold: float, higher_is_better: bool) -> tuple[list[dict], dict]:
    """Per ranking CSV: agreement by super-net accuracy and by super-net loss, and the distinct score
    counts; and the final epoch's per-architecture (truth, accuracy, loss) in the CSV's order. The file
    ``epoch_009.csv`` is written after the 10th epoch (0-based ``current_epoch`` 9): ``epoch`` = 10. The final
    epoch also keeps the architectures, so that a new version of the table re-scores it exactly."""
    epochs, final = [], {}
    for path in sorted((run_dir / "ranking").glob("epoch_*.csv")):
        rows = _rows(path)
        truth = [_num(r.get("ground_truth")) for r in rows]
        accuracy = [_num(r.get("supernet_accuracy")) for r in rows]
        loss = [_num(r.get("supernet_loss")) for r in rows]
        entry: dict[str, Any] = {"epoch": int(path.stem.split("_")[-1]) + 1, "architectures": len(rows),
                                 "distinct_accuracy": distinct(accuracy), "distinct_loss": distinct(loss)}
        entry.update(agreement_by_score(truth, accuracy, loss, threshold, higher_is_better))
        within = subspace_agreement(path.with_name(f"subspace_{path.name}"), threshold, higher_is_better)
        if within:
            entry["subspaces"] = within
        epochs.append(entry)
        final = {"epoch": entry["epoch"], "ground_truth": truth, "supernet_accuracy": accuracy, "supernet_loss": loss}
        if all(r.get("architecture") for r in rows):  # what a new table version re-scores exactly (rescore.py)
            final["architectures"] = [r["architecture"] for r in rows]
    return epochs, final


def images_per_architecture(config: dict[str, Any]) -> Optional[int]:
    """Validation images behind each super-net score: ``ranking.num_batches`` x the evaluation batch
    size (``data.init_args.eval_batch_size``, else ``batch_size``); None for the whole split."""
    batches = (config.get("ranking") or {}).get("num_batches")
    data = ((config.get("data") or {}).get("init_args") or {}) if isinstance(config.get("data"), dict) else {}
    size = data.get("eval_batch_size") or data.get("batch_size")
    return int(batches) * int(size) if batches and size else None


def top_ties(selection: dict[str, Any]) -> Optional[int]:
    """How many finalists share the winning shared-weight score (1 = a clear winner); None without
    finalists (decoded answers)."""
    finalists = selection.get("finalists")
    if not isinstance(finalists, list) or not finalists:
        return None
    key = "val_loss" if selection.get("score") == "loss" else "val_accuracy"
    values = [_num(f.get(key)) for f in finalists]
    target = _num(selection.get("supernet_val_loss" if key == "val_loss" else "supernet_val_accuracy"))
    if not math.isfinite(target):
        target = min(values) if key == "val_loss" else max(values)
    return sum(1 for v in values if math.isfinite(v) and abs(v - target) <= 1e-9 * max(1.0, abs(target)))


def checkpoint_margins(run_dir: Path) -> Optional[dict[str, Any]]:
    """Margin between the two largest softmax(alpha) weights of every decision, from the last
    checkpoint's architecture parameters (``arch_weights.*``); None without them."""
    path = run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        return None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False).get("state_dict", {})
    except Exception:  # noqa: BLE001  an unreadable checkpoint only loses the margins
        return None
    from lightning_nas.metrics.margins import top_two_margin

    margins: dict[str, float] = {}
    for name, tensor in state.items():
        # matrices only: a softmax per row (one edge's operations); a segmented vector's segments are
        # not in the checkpoint (the decoding callback logs those margins itself)
        if not name.startswith("arch_weights.") or tensor.dim() != 2:
            continue
        rows = torch.softmax(tensor.detach().double(), dim=-1)
        for index, row in enumerate(rows):
            margins[f"{name.split('.', 1)[1]}[{index}]"] = top_two_margin(row.tolist())
    return margins_summary(margins, "last.ckpt softmax(alpha)") if margins else None


def margins_summary(margins: dict[str, float], source: str) -> dict[str, Any]:
    values = list(margins.values())
    return {"source": source, "min": min(values), "median": float(np.median(values)), "edges": margins}


def decoding_curve(run_dir: Path) -> list[dict[str, Any]]:
    """``decoding.csv`` rows: epoch (1-based, as the ranking), the decoded architecture, its ground truth
    and regret, and the logged edge-weight margins when the callback recorded them."""
    curve = []
    for row in _rows(run_dir / "decoding.csv"):
        entry = {"epoch": int(float(row["epoch"])) + 1, "ground_truth": _num(row.get("ground_truth")),
                 "regret": _num(row.get("test_regret"))}
        if row.get("architecture"):
            entry["architecture"] = row["architecture"]
        if row.get("min_margin") not in (None, ""):
            entry["min_margin"] = _num(row["min_margin"])
        curve.append(entry)
    return curve


def logged_margins(run_dir: Path) -> Optional[dict[str, Any]]:
    """The decoding callback's margins of its last row (every decision, segments included)."""
    rows = [r for r in _rows(run_dir / "decoding.csv") if r.get("margins")]
    if not rows:
        return None
    try:
        margins = {k: float(v) for k, v in json.loads(rows[-1]["margins"]).items()}
    except (ValueError, AttributeError):
        return None
    return margins_summary(margins, f"decoding.csv, epoch {int(float(rows[-1]['epoch'])) + 1}") if margins else None


def environment(run: dict[str, Any], host_cpu: bool = False) -> dict[str, Any]:
    """Versions, CPU kind, threads and commit from ``run.json``. A run.json written before the CPU kind
    was recorded has none; with ``host_cpu`` (the runs ran on the extracting machine) this machine's
    is filled in and ``cpu_source`` says so."""
    from lightning_nas.run_record import cpu_kind

    versions = run.get("versions") or {}
    git = run.get("git") or {}
    cpu, source = run.get("cpu"), "run.json"
    if cpu is None and host_cpu:
        cpu, source = cpu_kind(), "the extracting host (run.json predates the CPU kind)"
    return {"python": versions.get("python"), "torch": versions.get("torch"),
            "lightning": versions.get("pytorch-lightning"), "numpy": versions.get("numpy"),
            "cpu": cpu, "cpu_source": source if cpu else None, "threads": run.get("torch_threads"),
            "platform": run.get("platform"),
            "commit": git.get("commit"), "dirty": git.get("dirty"),
            "resumed": len(run.get("history") or []) > 1}


def subspace_agreement(path: Path, threshold: float, higher_is_better: bool) -> dict[str, Any]:
    """Yu et al.'s "baseline-v2" agreement (Sec. 4.5, Table 3): the ranking agreement within each
    sub-space of fixed widths (``ranking.per_subspace``, ``subspace_epoch_XXX.csv``), averaged over the
    sub-spaces where it is defined (at least two cells that the ground truth does not all tie), by
    super-net accuracy and by loss as ``agreement_by_score``; ``{}`` without the file."""
    if not path.is_file():
        return {}
    groups: dict[str, list[dict[str, str]]] = {}
    for row in _rows(path):
        groups.setdefault(row["subspace"], []).append(row)
    per_score: dict[str, dict[str, list[float]]] = {}
    for rows in groups.values():
        if len(rows) < 2:
            continue
        agreement = agreement_by_score([_num(r.get("ground_truth")) for r in rows],
                                       [_num(r.get("supernet_accuracy")) for r in rows],
                                       [_num(r.get("supernet_loss")) for r in rows], threshold, higher_is_better)
        for score, values in agreement.items():
            for name, value in values.items():
                if math.isfinite(value):
                    per_score.setdefault(score, {}).setdefault(name, []).append(value)
    out: dict[str, Any] = {score: {name: sum(v) / len(v) for name, v in values.items()}
                           for score, values in per_score.items()}
    if out:
        out["subspaces"] = sum(1 for rows in groups.values() if len(rows) >= 2)
    return out


def record_trial(run_dir: Path, experiment: str, policy: Optional[RandomPolicy], table_size: int,
                 higher_is_better: bool, host_cpu: bool = False) -> Optional[dict[str, Any]]:
    """One finished trial (a run directory with ``selection.json``) as a JSON-able dict; None otherwise."""
    import yaml

    selection = _read_json(run_dir / "selection.json")
    if not selection:
        return None
    trial = _read_json(run_dir / "trial.json")
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    config = config or {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    strategy = str(model.get("class_path", "?")).rsplit(".", 1)[-1]
    factors = {k: str(v) for k, v in (trial.get("factors") or {}).items()}
    ranking = config.get("ranking") or {}
    threshold = float(ranking.get("sparse_threshold", 0.1))
    epochs, final = ranking_epochs(run_dir, threshold, higher_is_better)
    searches = int(selection.get("searches") or 1)

    def answer(entry: dict[str, Any]) -> dict[str, Any]:
        truth = _num(entry.get("ground_truth"))
        out = {"architecture": entry.get("architecture"), "ground_truth": truth, "rank": entry.get("rank"),
               "regret": _num(entry.get("regret")), "searches": searches}
        if policy is not None and math.isfinite(truth):
            goodness = truth if higher_is_better else -truth
            out.update(p_beat_random=policy.p_beat(goodness, searches), p_tie_random=policy.p_tie(goodness, searches))
        else:
            out["p_beat_random"] = _num(entry.get("p_beat_random"))
        return out

    record: dict[str, Any] = {
        "record_version": RECORD_VERSION, "experiment": experiment, "trial": run_dir.name,
        "group": group_label(strategy, factors), "factors": factors, "strategy": strategy,
        "seed": trial.get("seed", config.get("seed_everything")),
        "answer": {**answer(selection), "source": selection.get("answer_source"),
                   "score": selection.get("score"), "top_ties": top_ties(selection)},
        "ranking": {"threshold": threshold, "score": ranking.get("score", "accuracy"), "epochs": epochs,
                    "images_per_architecture": images_per_architecture(config), "final": final},
        "environment": environment(_read_json(run_dir / "run.json"), host_cpu),
        "table_size": table_size,
    }
    shared = selection.get("shared_weight_selection")
    if isinstance(shared, dict) and shared.get("architecture"):
        record["shared_weight_selection"] = {**answer(shared), "top_ties": top_ties(shared)}
    decoding = decoding_curve(run_dir)
    if decoding:
        record["decoding"] = decoding
    margins = logged_margins(run_dir) or checkpoint_margins(run_dir)
    if margins is not None:
        record["answer"]["margins"] = margins
    return _clean(record)


def table_info(config: dict[str, Any]) -> tuple[dict[str, Any], Optional[RandomPolicy]]:
    """The recipe's ground-truth table as the records describe it, and its exact random policy when
    the table is complete."""
    from lightning_nas.benchmarks import TabulatedBenchmark

    benchmark = config.get("benchmark") if isinstance(config.get("benchmark"), dict) else {}
    args = benchmark.get("init_args") or {}
    if not args.get("path"):
        return {}, None
    kind = str(benchmark.get("class_path", "")).rsplit(".", 1)[-1]
    if kind not in ("TabulatedBenchmark", "CSVBenchmark", ""):  # official files (NB101, NB201, NDS): no CSV
        return {"table": Path(str(args["path"])).name, "benchmark": kind, "complete": False}, None
    table = TabulatedBenchmark(args["path"], metric=args.get("metric", "test_accuracy_mean"),
                               higher_is_better=bool(args.get("higher_is_better", True)))
    complete = (table.sidecar.get("protocol") or {}).get("architectures") == "all"
    info = {"table": table.path.name, "metric": table.metric, "higher_is_better": table.higher_is_better,
            "size": len(table), "complete": complete,
            "sha256": hashlib.sha256(table.path.read_bytes()).hexdigest()}
    policy = RandomPolicy.from_table(list(table.table().values()), table.higher_is_better) if complete else None
    return info, policy


def extract(experiment_dir: str | Path, name: Optional[str] = None, out: str | Path = "results",
            host_cpu: bool = False, append: bool = False) -> Path:
    """Write ``OUT/NAME/experiment.json`` and ``trials.jsonl``; returns the folder. ``host_cpu``: fill a
    missing CPU kind with this machine's (only when the runs ran here). ``append``: add the trials to
    those already recorded in ``OUT/NAME`` (more seeds of the same experiment, run later or elsewhere:
    the table must be the same file, by its sha256; a trial recorded twice keeps its first record)."""
    import yaml

    from lightning_nas.io import atomic_write_text

    source = Path(experiment_dir)
    if (source / "config.yaml").is_file():  # one run directory (the quickstart) is a one-trial experiment
        dirs = [source]
    else:
        dirs = sorted(p for p in source.iterdir() if p.is_dir() and (p / "config.yaml").is_file()) \
            if source.is_dir() else []
    if not dirs:
        raise ReportError(f"EXPERIMENT_DIR {source}: no run directories (with config.yaml) in it")
    name = name or source.resolve().name
    config = yaml.safe_load((dirs[0] / "config.yaml").read_text()) or {}
    info, policy = table_info(config)
    higher = bool(info.get("higher_is_better", True))
    records = [r for r in (record_trial(d, name, policy, int(info.get("size") or 0), higher, host_cpu)
                           for d in dirs) if r]
    if not records:
        raise ReportError(f"EXPERIMENT_DIR {source}: no finished trial (selection.json) yet")
    meta = _read_json(source / "experiment.json")
    folder = Path(out) / name
    run = _read_json(dirs[0] / "run.json")
    experiment = {"name": name, "source": str(source.resolve()), "grid": meta.get("grid", []),
                  "command": meta.get("arguments") or run.get("command"),
                  "seeds": meta.get("seeds", []), "benchmark": info, "trials": len(records),
                  "unfinished": [d.name for d in dirs if not (d / "selection.json").is_file()]}
    if append:
        experiment, records = merged_with_recorded(folder, experiment, records)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "experiment.json", json.dumps(experiment, indent=1, sort_keys=True) + "\n")
    atomic_write_text(folder / "trials.jsonl",
                      "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records))
    return folder



def merged_with_recorded(folder: Path, experiment: dict[str, Any],
                         records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The experiment and trials already in ``folder`` with the new ones added (``extract --append``).

    Each extraction's source stays listed (``sources``); seeds and grid values are the unions; a
    trial already recorded keeps its record, so appending the same directory twice changes nothing."""
    old = _read_json(folder / "experiment.json")
    if not old:
        raise ReportError(f"--append: {folder}/experiment.json does not exist; extract without --append first")
    old_sha, new_sha = (old.get("benchmark") or {}).get("sha256"), (experiment.get("benchmark") or {}).get("sha256")
    if old_sha != new_sha:
        raise ReportError(f"--append: the runs used another ground-truth table ({new_sha}) than {folder} "
                          f"records ({old_sha}); extract them under another --name")
    recorded = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines() if line.strip()]
    known = {r["trial"] for r in recorded}
    merged = sorted(recorded + [r for r in records if r["trial"] not in known], key=lambda r: r["trial"])
    grid = {g["label"]: dict(g) for g in old.get("grid", [])}
    for group in experiment.get("grid", []):
        entry = grid.setdefault(group["label"], dict(group, values=[]))
        entry["values"] = entry["values"] + [v for v in group["values"] if v not in entry["values"]]
    sources = old.get("sources") or [{"source": old.get("source"), "command": old.get("command")}]
    sources = sources + [{"source": experiment["source"], "command": experiment["command"]}]
    done = {r["trial"] for r in merged}
    unfinished = sorted({*old.get("unfinished", []), *experiment["unfinished"]} - done)
    return ({**old, "grid": list(grid.values()), "seeds": sorted({*old.get("seeds", []), *experiment["seeds"]}),
             "sources": sources, "trials": len(merged), "unfinished": unfinished}, merged)
