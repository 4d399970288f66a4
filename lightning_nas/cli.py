"""The command line behind ``train.py``: LightningCLI with recipes, run directories and resumption.

A recipe is a LightningCLI config (YAML) with the sections ``trainer``, ``model`` (a strategy),
``data`` (a DataModule), ``benchmark`` (ground truth, optional), ``ranking`` and ``selection``
(the two callbacks) and a few run options. Any value can be overridden on the command line
(``--model.init_args.lr 0.01``). Everything is parsed and type-checked by jsonargparse; this module
only decides where the run lives and what it writes there.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, Optional

from jsonargparse import ActionConfigFile
from pytorch_lightning import LightningDataModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.model_helpers import is_overridden

import lightning_nas
from callbacks import ArchitectureDecoding, FinalSelection, WeightSharingRanking
from lightning_nas.benchmarks import Benchmark
from lightning_nas.loggers import RunCSVLogger
from lightning_nas.run_record import write_run_record
from lightning_nas.strategies import SearchStrategy


class RecipeError(ValueError):
    """A recipe or command line that cannot run; the message names the key and what is expected."""


class RecipeParser(LightningArgumentParser):
    """Parse errors as one readable message instead of usage text and a stack trace."""

    def error(self, message: str, ex: Exception | None = None):  # type: ignore[override]
        raise RecipeError(message)


class NASCLI(LightningCLI):
    def __init__(self, args: list[str] | None = None, resume: str | None = None, **kwargs: Any) -> None:
        self.resume = resume
        self.raw_args = list(args if args is not None else sys.argv[1:])
        kwargs.setdefault("trainer_defaults", {"deterministic": True, "num_sanity_val_steps": 0})
        super().__init__(
            model_class=SearchStrategy, datamodule_class=LightningDataModule,
            subclass_mode_model=True, subclass_mode_data=True, parser_class=RecipeParser,
            save_config_kwargs={"overwrite": True}, seed_everything_default=0, auto_configure_optimizers=False,
            parser_kwargs={"allow_abbrev": False},  # '--ranking.bn_mod' must not silently mean bn_mode
            run=False, args=self.raw_args, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("dump_header", [f"lightning_nas=={lightning_nas.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument("--recipe", "-c", "--config", action=ActionConfigFile,
                            help="A recipe (YAML); later arguments override its values.")
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_dir", type=Optional[str], default=None,
                            help="Run directory (default: runs/<recipe name>-seed<seed>).")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=50,
                            help="Training steps between (atomic) checkpoints; a killed run loses at most these.")
        parser.add_argument("--loggers", type=list[Literal["csv", "wandb"]], default=["csv"],
                            help="csv writes RUN_DIR/metrics.csv; wandb logs through WandbLogger "
                                 "(WANDB_MODE=offline works without a network).")
        parser.add_argument("--wandb_project", type=str, default="lightning_nas")
        parser.add_subclass_arguments(Benchmark, "benchmark", required=False,
                                      help="Ground truth of the space (e.g. lightning_nas.benchmarks.CSVBenchmark).")
        parser.add_lightning_class_args(WeightSharingRanking, "ranking")
        parser.add_lightning_class_args(FinalSelection, "selection")
        parser.add_lightning_class_args(ArchitectureDecoding, "decoding")
        parser.link_arguments("seed_everything", "data.init_args.seed")
        parser.link_arguments("seed_everything", "model.init_args.seed")
        parser.link_arguments("data", "model.init_args.num_classes", compute_fn=lambda data: data.num_classes,
                              apply_on="instantiate")
        parser.link_arguments("data", "model.init_args.in_channels", compute_fn=lambda data: data.in_channels,
                              apply_on="instantiate")
        parser.link_arguments("benchmark", "ranking.benchmark", apply_on="instantiate")
        parser.link_arguments("benchmark", "selection.benchmark", apply_on="instantiate")
        parser.link_arguments("benchmark", "decoding.benchmark", apply_on="instantiate")

    # ------------------------------------------------------------------ the run directory
    def before_instantiate_classes(self) -> None:
        config = self.config
        seed = config.seed_everything
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise RecipeError(f"seed_everything must be an integer seed (got {seed!r}): every run is seeded")
        if config.run_dir is None:
            recipes = config.get("recipe") or []
            name = Path(str(recipes[-1])).stem if recipes else "run"
            config.run_dir = str(Path("runs") / f"{name}-seed{seed}")
        self.run_dir = Path(config.run_dir)
        if not self.resume and (self.run_dir / "checkpoints").exists():
            raise RecipeError(f"run directory {self.run_dir} already holds a run: continue it with "
                              f"--resume {self.run_dir}, or choose another --run_dir")
        if self.resume and not self.checkpoint_path.is_file():
            raise RecipeError(f"--resume {self.run_dir}: no checkpoint {self.checkpoint_path} to resume from")

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        loggers: list[Logger] = []
        if "csv" in config.loggers:
            loggers.append(RunCSVLogger(str(self.run_dir), resume_from=self.checkpoint_path if self.resume else None))
        if "wandb" in config.loggers:
            from pytorch_lightning.loggers import WandbLogger

            loggers.append(WandbLogger(project=config.wandb_project, name=self.run_dir.name, save_dir=str(self.run_dir)))
        checkpoint = ModelCheckpoint(dirpath=str(self.run_dir / "checkpoints"), save_last=True, save_top_k=0,
                                     every_n_train_steps=config.checkpoint_every_n_steps)
        # Lightning's checkpoint writes are atomic (TorchCheckpointIO -> _atomic_save)
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(trainer_config.get("callbacks") or []) + [checkpoint]
        strategy = trainer_config.get("strategy")
        if isinstance(strategy, str) and strategy == "ddp":
            # A single-path step leaves most super-net parameters unused, which plain DDP rejects.
            # With detection on, parameters unused on every rank keep ``grad=None`` and SGD skips them.
            kwargs.setdefault("strategy", "ddp_find_unused_parameters_true")
        return super().instantiate_trainer(default_root_dir=str(self.run_dir), logger=loggers or False,
                                           callbacks=callbacks, **kwargs)

    # ------------------------------------------------------------------ running
    def fit(self) -> Trainer:
        seed = self.config.seed_everything
        write_run_record(self.run_dir, seed, self.raw_args, resumed_from=str(self.checkpoint_path) if self.resume else None)
        ckpt = str(self.checkpoint_path) if self.resume else None
        self.trainer.fit(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
        if is_overridden("test_step", self.model):  # stand-alone networks: report the official test split
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        return self.trainer


def resume_arguments(run_dir: str, overrides: list[str]) -> list[str]:
    """``--resume RUN_DIR``: the run's own resolved recipe, its directory, then any overrides."""
    recipe = Path(run_dir) / "config.yaml"
    if not recipe.is_file():
        raise RecipeError(f"--resume {run_dir}: {recipe} not found; is this a lightning_nas run directory?")
    return ["--recipe", str(recipe), "--run_dir", str(run_dir), *overrides]
