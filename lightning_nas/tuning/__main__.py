"""``python -m lightning_nas.tuning export EXPERIMENT_DIR [--name NAME] [--out results]``: the shipped
records of a finished tuning experiment (``results/<name>/``: experiment.json, trials.jsonl,
tuning.json, trajectories.jsonl).

``python -m lightning_nas.tuning join DIR [DIR ...] --to results/NAME [--method M] [--default R/GROUP]``: tuning
experiments of several seeds as the repetitions of one method in a results folder's anytime
trajectories (beside the black-box optimisers; ``trajectory.join``)."""
from __future__ import annotations

import sys
from typing import Optional

from jsonargparse import ArgumentParser

from lightning_nas.errors import LightningNASError


def main(argv: Optional[list[str]] = None) -> int:
    parser = ArgumentParser(prog="python -m lightning_nas.tuning", exit_on_error=False)
    commands = parser.add_subcommands()
    export = ArgumentParser()
    export.add_argument("experiment_dir", type=str, help="A finished --tune experiment directory.")
    export.add_argument("--name", type=Optional[str], default=None, help="results/<name> (default: the directory's name).")
    export.add_argument("--out", type=str, default="results")
    commands.add_subcommand("export", export, help="Write results/<name>/ from a tuning experiment.")
    join = ArgumentParser()
    join.add_argument("experiment_dirs", type=str, nargs="+",
                      help="Finished --tune experiments (or their exports), one per tuning seed.")
    join.add_argument("--to", type=str, required=True,
                      help="The results folder whose anytime comparison they join (e.g. results/blackbox_nb201_digits_729).")
    join.add_argument("--method", type=Optional[str], default=None, help="The method's name (default: the experiments').")
    join.add_argument("--default", type=Optional[str], default=None,
                      help="RESULTS/GROUP: the untuned runs of the same strategy (e.g. 'strategies/DARTS (1st order)', "
                           "a group of results/strategies), compared with the tuned ones in the docs block TO/tuned.")
    commands.add_subcommand("join", join, help="Add tuning repetitions to a results folder's anytime trajectories.")
    args = parser.parse_args(argv)
    from lightning_nas.tuning.trajectory import export as run_export
    from lightning_nas.tuning.trajectory import join as run_join

    try:
        if args.subcommand == "join":
            folder = run_join(args.join.experiment_dirs, args.join.to, args.join.method, args.join.default)
        else:
            folder = run_export(args.export.experiment_dir, args.export.name, args.export.out)
    except LightningNASError as error:
        print(f"tuning: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"[tuning] records -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
