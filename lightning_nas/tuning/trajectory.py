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
    """The incumbent after each evaluation. t_sim never goes back: an incumbent whose answer trains
    faster than its predecessor's is placed no earlier than its predecessor (the record format keeps
    a repetition's lines in time order; the curve only waits longer)."""
    lines, best, spent, last = [], None, 0.0, 0.0
    for evaluation in evals:
        spent += float(evaluation["search_seconds"])
        if _better(float(evaluation["valid"]), best["valid"] if best else None, mode):
            best = evaluation
        t_train = best.get("train_seconds") or 0.0
        last = max(last, round(spent + float(t_train), 6))
        lines.append({"method": method, "repetition": repetition, "t_sim": last,
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


#: settings that may differ between the repetitions of one tuned method (everything else must agree)
PER_REPETITION = ("seed", "tuning_file", "recipe_seed")


def join(sources: list[str | Path], out: str | Path, method: Optional[str] = None,
         default: Optional[str] = None) -> Path:
    """Add finished tuning experiments (or their ``export`` folders) to the results folder ``out`` as
    the repetitions of one method, beside the black-box optimisers' (``results/<name>/trajectories.jsonl``):
    the anytime figure and table then show its mean and bootstrap interval over repetitions (NAS-Bench-1Shot1
    Fig. 5 and App. F: tuned one-shot methods against the discrete baselines). A repetition is a
    tuning seed; two sources with the same seed, or with other settings that differ, are one line of error.
    The method's earlier lines in ``out`` are replaced; its sources, seeds and overhead go into
    ``out/experiment.json``. ``default``: ``RESULTS/GROUP``, the same strategy's untuned runs (a group of
    shipped records, e.g. ``strategies/DARTS (1st order)``), which ``results/tuned.py`` compares with
    the tuned repetitions."""
    from lightning_nas.blackbox import trajectory as records_format
    from lightning_nas.tuning.settings import TuningError

    if not sources:
        raise TuningError("join: name at least one tuning experiment directory")
    if default is not None and "/" not in default:
        raise TuningError(f"join: --default {default!r} must read RESULTS/GROUP, e.g. 'strategies/DARTS (1st order)'")
    lines: list[dict[str, Any]] = []
    common: Optional[dict[str, Any]] = None
    seeds, overheads, names = [], [], set()
    for source in map(Path, sources):
        try:
            summary = json.loads((source / "tuning.json").read_text())
        except (OSError, ValueError):
            raise TuningError(f"join: {source} has no readable tuning.json; is it a finished --tune experiment "
                              "or its export?") from None
        settings = summary.get("settings") or {}
        shared = {k: v for k, v in settings.items() if k not in PER_REPETITION}
        if common is None:
            common = shared
        elif shared != common:
            key = sorted(k for k in set(shared) | set(common) if shared.get(k) != common.get(k))[0]
            raise TuningError(f"join: {source} differs from {sources[0]} in {key} ({shared.get(key)!r} against "
                              f"{common.get(key)!r}); repetitions of one method differ only in their seed")
        seed = int(settings.get("seed", 0))
        if seed in seeds:
            raise TuningError(f"join: two experiments with tuning seed {seed} ({source}); a repetition is a seed")
        seeds.append(seed)
        overheads.append((summary.get("overhead") or {}).get("per_evaluation_seconds"))
        for line in records_format.read(source / TRAJECTORIES):
            names.add(line["method"])
            lines.append({**line, "repetition": seed})
    name = method or (names.pop() if len(names) == 1 else None)
    if name is None:
        raise TuningError(f"join: the experiments name several methods ({', '.join(sorted(names))}); set --method")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    file = out / TRAJECTORIES
    earlier = records_format.read(file) if file.is_file() else []
    ours = [{**line, "method": name} for line in sorted(lines, key=lambda r: r["repetition"])]
    records_format.write(file, [r for r in earlier if r["method"] != name] + ours)
    path = out / "experiment.json"
    experiment = json.loads(path.read_text()) if path.is_file() else {"name": out.name, "kind": "tuning"}
    experiment.setdefault("methods", {})[name] = {
        "kind": "tuning", "sources": [str(Path(s)) for s in sources], "seeds": seeds, "repetitions": len(seeds),
        "settings": common, "overhead_per_evaluation_seconds": overheads}
    if default is not None:
        results, _, group = default.partition("/")
        experiment["methods"][name]["default"] = {"results": results, "group": group}
    atomic_write_json(path, experiment)
    return file
