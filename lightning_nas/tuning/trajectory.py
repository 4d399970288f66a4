"""A finished tuning experiment as records: ``tuning.json`` and ``trajectories.jsonl``.

The trajectory follows NAS-Bench-1Shot1 (Zela et al. 2020), Sec. 5.4 and App. F.1: after every
evaluation (a configuration's search up to one budget, in the order they finished) the incumbent is
the evaluation with the best benchmark validation metric so far, over all budgets; its simulated
wall-clock time is t_sim = t_search + t_train, t_search the search time of all evaluations so far
(summed, as on one worker) and t_train the benchmark's training time of the incumbent's answer, where
the table gives it (else the on-demand training time; else 0, and ``tuning.json`` says so).

Each line of ``trajectories.jsonl``: ``{"method", "repetition", "t_sim", "valid", "test", "test_regret"}``
(the format the black-box optimisers write too, so one anytime plot reads both).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from lightning_nas.io import atomic_write_json, atomic_write_text

TRAJECTORIES = "trajectories.jsonl"


def evaluations(root: Path) -> list[dict[str, Any]]:
    """Every evaluation of every trial (``trial_*/tuning_trial.json``), in the order they finished."""
    found = []
    for path in sorted(root.glob("trial_*/tuning_trial.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for evaluation in record.get("evaluations", []):
            found.append({"trial": record["trial"], "config": record["config"], **evaluation})
    return sorted(found, key=lambda e: (e["finished"], e["trial"], e["epochs"]))


def _better(a: float, b: Optional[float], mode: str) -> bool:
    return b is None or (a > b if mode == "max" else a < b)


def trajectory(evals: list[dict[str, Any]], mode: str, method: str, repetition: int) -> list[dict[str, Any]]:
    lines, best, spent = [], None, 0.0
    for evaluation in evals:
        spent += float(evaluation["search_seconds"])
        if _better(float(evaluation["valid"]), best["valid"] if best else None, mode):
            best = evaluation
        t_train = best.get("train_seconds") or 0.0
        lines.append({"method": method, "repetition": repetition, "t_sim": round(spent + float(t_train), 6),
                      "valid": best["valid"], "test": best["test"], "test_regret": best["test_regret"]})
    return lines


def summarise_tuning(root: Path, settings: dict[str, Any], overhead: dict[str, Any], method: str) -> dict[str, Any]:
    """Write ``tuning.json`` and ``trajectories.jsonl`` into ``root``; returns the summary."""
    evals = evaluations(root)
    mode = settings["objective"]["mode"]
    lines = trajectory(evals, mode, method, int(settings.get("seed", 0)))
    best = None
    for evaluation in evals:
        if _better(float(evaluation["valid"]), best["valid"] if best else None, mode):
            best = evaluation
    trials = sorted({e["trial"] for e in evals})
    search = sum(float(e["search_seconds"]) for e in evals)
    tuner = float(overhead.get("searcher_seconds", 0.0)) + float(overhead.get("scheduler_seconds", 0.0))
    overhead = {**overhead, "trials": len(trials), "evaluations": len(evals), "trial_seconds_total": search,
                "per_trial_seconds": tuner / len(trials) if trials else None,
                "per_evaluation_seconds": tuner / len(evals) if evals else None,
                "trial_seconds_per_trial": search / len(trials) if trials else None,
                "fraction_of_trial_time": tuner / search if search > 0 else None}
    times_known = all(e.get("train_seconds") is not None for e in evals)
    times = settings["objective"].get("times")
    from_table = bool(times) and Path(times).is_file()
    summary = {"settings": settings, "overhead": overhead, "evaluations": evals,
               "t_train": ("unknown for some answers (0)" if not times_known else
                           f"the training time of the answer in {times}" if from_table else
                           "the on-demand training time of the answer (objective.on_demand)"),
               "incumbent": None if best is None else {
                   key: best.get(key) for key in ("trial", "config", "epochs", "architecture", "valid", "test",
                                                  "test_regret", "answer_source", "valid_source", "train_seconds")}}
    atomic_write_json(root / "tuning.json", _finite(summary))
    atomic_write_text(root / TRAJECTORIES, "".join(json.dumps(_finite(line), sort_keys=True) + "\n" for line in lines))
    return summary


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def export(experiment_dir: str | Path, name: Optional[str] = None, out: str | Path = "results") -> Path:
    """``results/<name>/``: the experiment records of ``lightning_nas.results extract`` (experiment.json,
    trials.jsonl) plus ``tuning.json`` and ``trajectories.jsonl``."""
    import shutil

    from lightning_nas.results.extract import extract

    source = Path(experiment_dir)
    if not (source / "tuning.json").is_file():
        from lightning_nas.tuning.settings import TuningError

        raise TuningError(f"{source}: no tuning.json; is this a finished --tune experiment directory?")
    folder = extract(source, name=name, out=out)
    for file in ("tuning.json", TRAJECTORIES):
        shutil.copyfile(source / file, folder / file)
    return folder
