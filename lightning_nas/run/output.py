"""What third-party libraries show during a run: Lightning's noise silenced, W&B checked up front.

A user reads ``train.py``'s output for the run, not for Lightning's tips, hardware banners and
known-harmless warnings; and a W&B logger that cannot start should fail before the first step, in
one line that says how to log in or log offline, not with a traceback in the middle of training.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Iterator

from pytorch_lightning.loggers import Logger

from lightning_nas.errors import RecipeError
from lightning_nas.run.errors import first_line


@contextlib.contextmanager
def quiet_third_parties() -> Iterator[None]:
    """Lightning's tips, hardware banners and known-harmless warnings are not what a user needs to read."""
    names = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
             "lightning_fabric.utilities.seed", "lightning.fabric.utilities.seed",
             "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        for message in (".*LightningCLI's args parameter is intended to run from within Python.*",
                        ".*but have no `validation_step`.*", ".*isinstance\\(treespec, LeafSpec\\).*",
                        ".*The dirpath has changed from.*", ".*Checkpoint directory .* exists and is not empty.*",
                        ".*Experiment logs directory .* exists and is not empty.*",
                        ".*does not have many workers which may be a bottleneck.*",
                        ".*The number of training batches .* is smaller than the logging interval.*",
                        # manual optimisation (the bilevel strategies): the step's checkpoint holds the state
                        # after its update, which is where the next step resumes (RunCheckpoint; the resume
                        # tests compare a killed-and-resumed run with one that never stopped, bit for bit)
                        ".*Using ModelCheckpoint with manual optimization and every_n_train_steps.*"):
            warnings.filterwarnings("ignore", message=message)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def wandb_logger(project: str, run_dir: Path) -> Logger:
    """A WandbLogger that fails now, in one line, when W&B can neither reach an account nor run offline."""
    try:
        import wandb
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:
        raise RecipeError("--loggers wandb: wandb is not installed (pip install wandb), or use --loggers [csv]") from None
    mode = os.environ.get("WANDB_MODE", "").lower()
    hint = ("run `wandb login` (or set WANDB_API_KEY), or log offline with WANDB_MODE=offline "
            "(sync later with `wandb sync`)")
    if mode not in ("offline", "dryrun", "disabled"):
        try:
            key = wandb.api.api_key
        except Exception:
            key = None
        if not key:
            raise RecipeError(f"--loggers wandb: not logged in to W&B: {hint}")
    logger = WandbLogger(project=project, name=run_dir.name, save_dir=str(run_dir))
    try:
        _ = logger.experiment  # starts the run now: a failure is a message, not a traceback mid-training
    except Exception as error:
        first = first_line(error)
        raise RecipeError(f"--loggers wandb: W&B could not start ({first}): {hint}") from None
    return logger
