"""What a command prints at its end: where everything of the run went and how it did, or, after a
stop signal, the checkpoint it stopped at and the command that continues it."""
from __future__ import annotations

import json
from pathlib import Path

from lightning_nas import signals
from lightning_nas.run.checkpoints import last_checkpoint, read_checkpoint


def interrupted_message(stop: signals.Interrupted) -> str:
    run_dir = getattr(stop, "run_dir", None)
    if run_dir is None:
        return f"stopped by {stop.name} before the run started"
    checkpoint = last_checkpoint(run_dir)
    saved, _ = read_checkpoint(checkpoint)
    where = f" during {stop.where}" if stop.where and stop.where != "training" else ""
    if not isinstance(saved, dict):
        return f"stopped by {stop.name}{where} before the first checkpoint; start it again (nothing to resume)"
    return (f"stopped by {stop.name}{where}; checkpoint {checkpoint} (step {saved.get('global_step')}); "
            f"continue with: python train.py --resume {run_dir}")


def _last_ranking(run_dir: Path) -> dict[str, str]:
    import csv

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return {}
    last: dict[str, str] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("ranking/kendall_tau"):
                last = row
    return last


def summarise(run_dir: Path) -> None:
    lines = [f"\n[lightning_nas] run directory: {run_dir}",
             f"  recipe (resolved):   {run_dir / 'config.yaml'}",
             f"  record:              {run_dir / 'run.json'}",
             f"  metrics:             {run_dir / 'metrics.csv'}",
             f"  checkpoints:         {run_dir / 'checkpoints'}"]
    ranking = sorted((run_dir / "ranking").glob("epoch_*.csv"))
    if ranking:
        lines.append(f"  ranking tables:      {run_dir / 'ranking'} ({len(ranking)} epochs)")
    row = _last_ranking(run_dir)
    if row:
        parts = [f"{label} {float(row[key]):.3f}" for key, label in
                 (("ranking/kendall_tau", "Kendall tau"), ("ranking/sparse_kendall_tau", "sparse Kendall tau"),
                  ("ranking/spearman", "Spearman")) if row.get(key)]
        epoch = f" (epoch {int(float(row['epoch'])) + 1})" if row.get("epoch") else ""
        lines.append(f"  final ranking{epoch}: " + ", ".join(parts))
    selection = run_dir / "selection.json"
    if selection.is_file():
        try:
            result = json.loads(selection.read_text())
        except ValueError:
            result = {}
        flat = {**result, **(result.get("result") or {} if isinstance(result.get("result"), dict) else {})}
        lines.append(f"  selection:           {selection}")
        if "architecture" in flat:
            lines.append(f"  selected:            {flat['architecture']}")
        truth = []
        if isinstance(flat.get("ground_truth"), (int, float)):
            truth.append(f"{flat['ground_truth']:.2f}")
        if flat.get("rank") is not None:
            truth.append(f"rank {flat['rank']}" + (f" of {flat['table_size']}" if flat.get("table_size") else ""))
        if isinstance(flat.get("p_beat_random"), (int, float)):
            truth.append(f"p(beat random) = {flat['p_beat_random']:.3f}")
        if truth:
            lines.append(f"  ground truth:        {truth[0]}" + (f" ({', '.join(truth[1:])})" if truth[1:] else ""))
    print("\n".join(lines), flush=True)
