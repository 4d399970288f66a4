"""Entry point of ``train.py``: run a recipe, print where everything went, turn bad input into one line."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from lightning_nas.benchmarks import GroundTruthError
from lightning_nas.registry import UnknownNameError
from lightning_nas.spaces import ArchitectureError

USER_ERRORS = (ValueError, LookupError, FileNotFoundError, ArchitectureError, GroundTruthError, UnknownNameError)


def _take_option(argv: list[str], name: str) -> tuple[str | None, list[str]]:
    """Remove ``name VALUE`` (or ``name=VALUE``) from argv; train.py options that replace the recipe."""
    rest, value, i = [], None, 0
    while i < len(argv):
        if argv[i] == name and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith(name + "="):
            value = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return value, rest


def _take_all(argv: list[str], name: str) -> tuple[list[str], list[str]]:
    """Remove every ``name VALUE`` (or ``name=VALUE``) from argv, in order (options that repeat, like ``--grid``)."""
    values, rest, i = [], [], 0
    while i < len(argv):
        if argv[i] == name and i + 1 < len(argv):
            values.append(argv[i + 1])
            i += 2
            continue
        if argv[i].startswith(name + "="):
            values.append(argv[i].split("=", 1)[1])
        else:
            rest.append(argv[i])
        i += 1
    return values, rest


def concise(message: str) -> str:
    """jsonargparse reports a failing subclass as every Union member's error, and a failing link
    (e.g. the DataModule loading its data to tell the model its classes) with the link's
    internals; keep the real cause."""
    message = re.sub(r"Call to compute_fn of link .*? failed: ", "", str(message), flags=re.S)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return str(message)
    causes: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("- "):
            causes.append([line[2:]])
        elif causes and not line.startswith(("Given value", "Subtypes:", "Errors:", "Does not validate")):
            causes[-1].append(line)
    real = [" ".join(c) for c in causes if "Expected a <class 'NoneType'>" not in c[0]]
    if not real:
        return " ".join(lines)
    head = lines[0] if lines[0].startswith("Parser key") else ""
    return " ".join(filter(None, [head, "; ".join(real)]))


def main(argv: list[str], show_traceback: bool = False) -> int:
    import warnings

    from lightning_nas.cli import NASCLI, RecipeError, resume_arguments

    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended to run from within Python.*")

    try:
        resume, argv = _take_option(list(argv), "--resume")
        reproduce, argv = _take_option(argv, "--reproduce")
        seeds, argv = _take_option(argv, "--seeds")
        grid, argv = _take_all(argv, "--grid")
        if seeds is not None or grid:  # an experiment: many ordinary runs through Ray Tune
            from lightning_nas.experiments.runner import experiment_main

            if resume is not None or reproduce is not None:
                raise RecipeError("--seeds/--grid cannot be combined with --resume or --reproduce")
            return experiment_main(seeds, grid, argv)
        if resume is not None and reproduce is not None:
            raise RecipeError("--resume and --reproduce cannot be combined")
        if resume is not None:
            argv = resume_arguments(resume, argv)
        if reproduce is not None:
            from lightning_nas.experiments.reproduce import reproduce_arguments, use_recorded_threads

            argv, _ = reproduce_arguments(reproduce, argv)
            use_recorded_threads(reproduce)
        cli = NASCLI(args=argv, resume=resume)
        trainer = cli.fit()
    except (RecipeError, *USER_ERRORS) as error:
        if show_traceback:
            raise
        print(f"train.py: error: {concise(str(error))}", file=sys.stderr)
        return 2
    if trainer.is_global_zero:
        summarise(cli.run_dir)
        if reproduce is not None:  # exit status 1 when the rerun's results differ
            from lightning_nas.experiments.reproduce import report

            return 0 if report(Path(reproduce), cli.run_dir) else 1
    return 0


def summarise(run_dir: Path) -> None:
    lines = [f"\n[lightning_nas] run directory: {run_dir}",
             f"  recipe (resolved):   {run_dir / 'config.yaml'}",
             f"  record:              {run_dir / 'run.json'}",
             f"  metrics:             {run_dir / 'metrics.csv'}",
             f"  checkpoints:         {run_dir / 'checkpoints'}"]
    ranking = sorted((run_dir / "ranking").glob("epoch_*.csv"))
    if ranking:
        lines.append(f"  ranking tables:      {run_dir / 'ranking'} ({len(ranking)} epochs)")
    selection = run_dir / "selection.json"
    if selection.is_file():
        result = json.loads(selection.read_text())
        lines.append(f"  selection:           {selection}")
        lines.append(f"  selected:            {result['architecture']}")
        if "ground_truth" in result:
            lines.append(f"  ground truth:        {result['ground_truth']:.2f} (rank {result['rank']} of "
                         f"{result['table_size']}, p(beat random) = {result['p_beat_random']:.3f})")
    print("\n".join(lines))
