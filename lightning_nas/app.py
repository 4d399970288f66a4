"""Entry point of ``train.py``: run a recipe (or an experiment), print where everything went, and turn
the project's own errors into one line.

Only ``lightning_nas.errors.LightningNASError`` and its subclasses (found also behind what jsonargparse
or Lightning wrapped them in) become ``train.py: error: ...`` with exit status 2; any other exception
is a programming error and keeps its traceback. A stop signal (SIGTERM, SIGINT) ends the run at a safe
point with a checkpoint and exit status 128 + the signal number.
"""
from __future__ import annotations

import sys

from lightning_nas import signals
from lightning_nas.cli import run
from lightning_nas.experiments.runner import experiment_main
from lightning_nas.run.errors import concise, project_error
from lightning_nas.run.summary import interrupted_message


def main(argv: list[str], show_traceback: bool = False) -> int:
    with signals.handled():
        try:
            return run(list(argv), experiment=experiment_main)
        except signals.Interrupted as stop:
            print(f"train.py: {interrupted_message(stop)}", file=sys.stderr, flush=True)
            return 128 + stop.signum
        except Exception as error:
            cause = project_error(error)
            if cause is None or show_traceback:
                raise
            print(f"train.py: error: {concise(str(cause))}", file=sys.stderr)
            return 2
