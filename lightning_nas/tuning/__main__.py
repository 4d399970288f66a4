"""``python -m lightning_nas.tuning export EXPERIMENT_DIR [--name NAME] [--out results]``: the shipped
records of a finished tuning experiment (``results/<name>/``: experiment.json, trials.jsonl,
tuning.json, trajectories.jsonl)."""
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
    args = parser.parse_args(argv)
    from lightning_nas.tuning.trajectory import export as run_export

    try:
        folder = run_export(args.export.experiment_dir, args.export.name, args.export.out)
    except LightningNASError as error:
        print(f"tuning: error: {error}", file=sys.stderr)
        return 2
    print(f"[tuning] records -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
