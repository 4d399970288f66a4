"""The command line behind ``train.py``: LightningCLI with recipes, run directories and resumption.

A recipe is a LightningCLI config (YAML) with the sections ``trainer``, ``model`` (a strategy),
``data`` (a DataModule), ``benchmark`` (ground truth, optional), ``ranking`` and ``selection``
(the two callbacks) and a few run options. Any value can be overridden on the command line
(``--ranking.bn_mode running``). Everything is parsed and type-checked by jsonargparse, including
the options that decide what kind of run this is (``--resume``, ``--reproduce``, ``--seeds``,
``--grid`` and the experiment options); this module decides where the run lives, guards its
directory (lock, checkpoints, thread count) and what it writes there, with the pieces in
``lightning_nas.run`` (checkpoints, lock, validation, progress, output, summary).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import torch
from jsonargparse import ActionConfigFile, Namespace
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveInt
from pytorch_lightning import LightningDataModule, Trainer
from pytorch_lightning.callbacks.progress import ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import Logger
from pytorch_lightning.plugins.io import CheckpointIO
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from pytorch_lightning.utilities.model_helpers import is_overridden

import lightning_nas
from callbacks import ArchitectureDecoding, FinalSelection, WeightSharingRanking
from lightning_nas import signals
from lightning_nas.benchmarks import Benchmark
from lightning_nas.errors import RecipeError
from lightning_nas.io import remove_temporaries
from lightning_nas.loggers import RunCSVLogger
from lightning_nas.run.checkpoints import (RunCheckpoint, RunCheckpointIO, check_checkpoint_fits, choose_checkpoint,
                                          last_checkpoint)
from lightning_nas.run.errors import project_error, unknown_option
from lightning_nas.run.front_options import FRONT_OPTIONS, reset_front_options
from lightning_nas.run.ground_truth import drop_missing_ground_truth
from lightning_nas.run.lock import LOCK_FILE, is_launcher_process, lock_run_directory, release_locks
from lightning_nas.run.output import quiet_third_parties, wandb_logger
from lightning_nas.run.progress import PlainProgress
from lightning_nas.run.reproduce import report, reproduction_directory, use_recorded_threads
from lightning_nas.run.fidelity import match_budget
from lightning_nas.run.requirements import settle_requirements
from lightning_nas.run.start import StartRecord, TrainingStarted
from lightning_nas.run.summary import summarise
from lightning_nas.run.validation import (RecipeFileAction, check_recipe_file, check_run_directory, model_trains,
                                         validate_trainer)
from lightning_nas.run_record import recorded_threads, write_run_record
from lightning_nas.strategies import SearchStrategy

__all__ = ["NASCLI", "run", "FRONT_OPTIONS", "reset_front_options"]


# ---------------------------------------------------------------------------------------- parser
class RecipeParser(LightningArgumentParser):
    """Parse errors as one readable message instead of usage text and a stack trace."""

    def error(self, message: str, ex: Exception | None = None):  # type: ignore[override]
        cause = project_error(ex) if ex is not None else None
        text = str(cause) if cause is not None else message
        raise RecipeError(unknown_option(message, text) or text)


class _RunDirectoryAction(argparse.Action):
    """``--resume RUN_DIR`` / ``--reproduce RUN_DIR``: read the run's resolved recipe (``config.yaml``)
    as if given with ``--recipe``; options after it override its values."""

    def __call__(self, parser, cfg, values, option_string=None):  # type: ignore[override]
        recipe = Path(str(values)) / "config.yaml"
        if not recipe.is_file():
            raise RecipeError(f"{option_string} {values}: {recipe} not found; is this a lightning_nas run directory?")
        check_recipe_file(recipe)
        ActionConfigFile.apply_config(parser, cfg, "recipe", str(recipe))
        reset_front_options(cfg)  # config.yaml of older versions may hold them
        cfg[self.dest] = str(values)
        cfg["run_dir"] = str(values) if self.dest == "resume" else None


def add_run_options(parser: LightningArgumentParser) -> None:
    """The options that say what kind of run this is, and the run's own settings."""
    group = parser.add_argument_group("Runs", "Where a run lives and how it continues.")
    group.add_argument("--resume", action=_RunDirectoryAction, metavar="RUN_DIR",
                       help="Continue the run in RUN_DIR (also after moving or copying it) from its last checkpoint, "
                            "with its own resolved recipe; later options override it.")
    group.add_argument("--reproduce", action=_RunDirectoryAction, metavar="RUN_DIR",
                       help="Rerun RUN_DIR's recipe in a new directory (default: beside it, or beside its experiment, "
                            "named ...-reproduce) and compare every result; exit 1 if they differ.")
    group.add_argument("--run_dir", type=Optional[str], default=None,
                       help="Run directory (default: runs/<recipe name>-seed<seed>).")
    group.add_argument("--checkpoint_every_n_steps", type=PositiveInt, default=50,
                       help="Training steps between (atomic) checkpoints; a killed run loses at most these.")
    group.add_argument("--threads", type=Optional[PositiveInt], default=None,
                       help="torch intra-op CPU threads (default: torch's default). CPU results depend on it: "
                            "recorded in run.json and config.yaml, restored by --resume and --reproduce.")
    group.add_argument("--allow_thread_change", type=bool, default=False,
                       help="With --resume: accept a --threads other than the run started with (numbers after "
                            "the checkpoint will differ from an uninterrupted run).")
    group.add_argument("--stop_at_epoch", type=Optional[PositiveInt], default=None,
                       help="End this command after that many epochs in all (a checkpoint, the final selection), "
                            "keeping trainer.max_epochs and so every schedule; --resume RUN_DIR continues as if "
                            "the run had never stopped (tuning's fidelity, docs/tuning.md).")
    group.add_argument("--loggers", type=list[Literal["csv", "wandb"]], default=["csv"],
                       help="csv writes RUN_DIR/metrics.csv; wandb logs through WandbLogger "
                            "(WANDB_MODE=offline works without a network).")
    group.add_argument("--wandb_project", type=str, default="lightning_nas")
    group.add_argument("--budget_match", type=Optional[dict[str, float]], default=None,
                       help="Full-fidelity values of the recipe's reduced keys ({model.init_args.network.C: 16}): "
                            "trainer.max_epochs is prolonged by their product of ratios (Yu et al. 2021, Sec. 4.4; "
                            "lightning_nas/run/fidelity.py).")
    experiment = parser.add_argument_group(
        "Experiments", "A recipe over seeds x a grid of values on Ray Tune, one run directory per trial "
                       "(docs/experiments.md).")
    experiment.add_argument("--seeds", type=Optional[str], default=None,
                            help="Seeds of every grid point: 0-9, 0,3,7 or 0-2,5.")
    experiment.add_argument("--grid", action="append", type=str, default=None, metavar="KEYS=V1,V2",
                            help="One factor: a recipe key and its values (ranking.bn_mode=batch,running); tied "
                                 "keys K1,K2=V1,V2 take each value together; repeat for a cartesian product.")
    experiment.add_argument("--tune", type=Optional[str], default=None, metavar="TUNING.yaml",
                            help="Tune the recipe on Ray Tune (BOHB, ASHA, Hyperband) with this tuning file "
                                 "(configuration space, scheduler, fidelity, objective; docs/tuning.md).")
    experiment.add_argument("--tune_seed", type=Optional[NonNegativeInt], default=None,
                            help="The tuner's seed instead of the tuning file's seed: one repetition of a tuning "
                                 "experiment (with --seed_everything for its trials; join them, docs/tuning.md).")
    experiment.add_argument("--experiment_dir", type=Optional[str], default=None,
                            help="Where the trials go (default: runs/experiments/<recipe name>).")
    experiment.add_argument("--ray_address", type=Optional[str], default=None,
                            help="Run on this Ray cluster instead of a private local one.")
    experiment.add_argument("--num_cpus", type=Optional[PositiveInt], default=None,
                            help="CPUs of the private local Ray cluster (default: all cores).")
    experiment.add_argument("--gpus_per_trial", type=NonNegativeFloat, default=0.0, help="GPUs each trial reserves.")
    experiment.add_argument("--max_concurrent", type=NonNegativeInt, default=0,
                            help="At most this many trials at once (0: as many as resources allow).")


class RunConfigSaver(SaveConfigCallback):
    """config.yaml without the options that say what kind of run this was (FRONT_OPTIONS)."""

    def __init__(self, parser: Any, config: Namespace, *args: Any, **kwargs: Any) -> None:
        super().__init__(parser, reset_front_options(config.clone()), *args, **kwargs)


# ---------------------------------------------------------------------------------------- the CLI
class NASCLI(LightningCLI):
    def __init__(self, args: list[str] | None = None, resume: str | None = None, **kwargs: Any) -> None:
        self._resume_arg = resume  # (old keyword: the same as --resume RUN_DIR first in args)
        self.raw_args = list(args if args is not None else sys.argv[1:])
        if resume is not None:
            self.raw_args = ["--resume", str(resume), *self.raw_args]
        self.experiment = False
        self.checkpoint: Path | None = None  # what --resume continues from
        self.reproduce: Path | None = None
        self.start: StartRecord | None = None  # the run directory before this command (undone on failure)
        kwargs.setdefault("trainer_defaults", {"deterministic": True, "num_sanity_val_steps": 0})
        super().__init__(
            model_class=SearchStrategy, datamodule_class=LightningDataModule,
            subclass_mode_model=True, subclass_mode_data=True, parser_class=RecipeParser,
            save_config_callback=RunConfigSaver,
            save_config_kwargs={"overwrite": True}, seed_everything_default=0, auto_configure_optimizers=False,
            parser_kwargs={"allow_abbrev": False},  # '--ranking.bn_mod' must not silently mean bn_mode
            run=False, args=self.raw_args, **kwargs)

    @property
    def resume(self) -> str | None:
        return self.config.get("resume") if hasattr(self, "config") else self._resume_arg

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("dump_header", [f"lightning_nas=={lightning_nas.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument("--recipe", "-c", "--config", action=RecipeFileAction,
                            help="A recipe (YAML); later arguments override its values.")
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_run_options(parser)
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
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # before LightningCLI seeds (which raises a ValueError on a seed outside numpy's range)
        seed = self.config.get("seed_everything")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
            raise RecipeError(f"seed_everything must be an integer in [0, 2**32 - 1] (numpy's seed range), got "
                              f"{seed!r}: every run is seeded")

    def before_instantiate_classes(self) -> None:
        config = self.config
        seed = config.seed_everything
        if config.get("tune_seed") is not None and not config.get("tune"):
            raise RecipeError("--tune_seed is the tuner's seed of a --tune experiment; add --tune TUNING.yaml")
        self.experiment = config.get("seeds") is not None or bool(config.get("grid")) or bool(config.get("tune"))
        if self.experiment:
            if config.get("resume") or config.get("reproduce"):
                raise RecipeError("--seeds/--grid/--tune cannot be combined with --resume or --reproduce "
                                  "(rerun the experiment command to resume its unfinished trials)")
            return
        if config.get("resume") and config.get("reproduce"):
            raise RecipeError("--resume and --reproduce cannot be combined")
        validate_trainer(config.get("trainer"), trains=model_trains(config.get("model")))
        settle_requirements(config)  # clipping in one place, the data splits the strategy needs
        match_budget(config)  # low fidelity with the full budget: more epochs, recorded as such
        drop_missing_ground_truth(config)
        resume = config.get("resume")
        if resume and config.run_dir is not None and Path(config.run_dir).resolve() != Path(resume).resolve():
            raise RecipeError(f"--resume {resume} continues the run where it is; --run_dir {config.run_dir} "
                              "cannot move it (use --reproduce to rerun it elsewhere)")
        if config.get("reproduce"):
            self.reproduce = Path(config.reproduce)
            if config.run_dir is None:
                config.run_dir = str(reproduction_directory(self.reproduce))
            if Path(config.run_dir).resolve() == self.reproduce.resolve():
                raise RecipeError(f"--reproduce {config.reproduce}: --run_dir must differ from the run being reproduced")
        if config.run_dir is None:
            recipes = config.get("recipe") or []
            name = Path(str(recipes[-1])).stem if recipes else "run"
            config.run_dir = str(Path("runs") / f"{name}-seed{seed}")
        if not str(config.run_dir).strip():
            raise RecipeError("run_dir is empty; give a directory (default: runs/<recipe name>-seed<seed>)")
        self.run_dir = Path(config.run_dir)
        check_run_directory(self.run_dir)
        self._set_threads()
        if not resume:
            # Checked again under the lock, which a new run takes only once everything else passed (fit).
            self._check_no_run_there()
            if is_launcher_process():
                self.start = StartRecord(self.run_dir)
            return
        # A resume locks at once: a second process must not touch a running run's checkpoints.
        if is_launcher_process():
            self.start = StartRecord(self.run_dir)
        with self._undone_on_failure():
            self._lock()
            self._check_same_network()
            # (DDP processes started by rank 0 choose the same checkpoint, after rank 0 set a damaged one aside)
            self.checkpoint = choose_checkpoint(self.run_dir, set_aside=is_launcher_process())

    def _lock(self) -> None:
        """Hold the run directory (launcher process only); from now on what appears there is this command's."""
        if is_launcher_process():
            new_lock_file = not (self.run_dir / LOCK_FILE).exists()
            lock_run_directory(self.run_dir)
            remove_temporaries(self.run_dir)  # what writes killed earlier left (only under the lock)
            if self.start is not None:
                self.start.claim(own=(LOCK_FILE,) if new_lock_file else ())

    def _check_no_run_there(self) -> None:
        if (self.run_dir / "checkpoints").exists():
            raise RecipeError(f"run directory {self.run_dir} already holds a run: continue it with "
                              f"--resume {self.run_dir}, or choose another --run_dir")

    @contextlib.contextmanager
    def _undone_on_failure(self) -> Iterator[None]:
        """A failure before training leaves the run directory as this command found it (``StartRecord``)."""
        if self.start is None:
            yield
            return
        with self.start.undone_on_failure():
            yield

    def _set_threads(self) -> None:
        """The run's torch thread count: recorded at the start, restored on --resume (another count is
        refused unless --allow_thread_change), taken from the original by --reproduce."""
        config = self.config
        requested = config.get("threads")
        source = self.run_dir if config.get("resume") else self.reproduce
        recorded = recorded_threads(source) if source is not None else None
        if config.get("resume") and recorded and requested and requested != recorded \
                and not config.get("allow_thread_change"):
            raise RecipeError(f"--resume {self.run_dir}: the run started with {recorded} torch thread(s) "
                              f"(run.json); --threads {requested} would change every number from the checkpoint on. "
                              f"Drop --threads, or add --allow_thread_change true to accept")
        if self.reproduce is not None and requested is None and recorded is None:
            recorded = use_recorded_threads(self.reproduce)  # older runs: run.json or trial.json
        threads = requested or recorded or torch.get_num_threads()
        if threads != torch.get_num_threads():
            if source is not None and requested is None:
                print(f"[lightning_nas] using {threads} torch thread(s) as {source} did", flush=True)
            torch.set_num_threads(threads)
        config.threads = threads  # config.yaml records the count

    def _check_same_network(self) -> None:
        """``--resume RUN --recipe OTHER.yaml`` may change training settings, not what the checkpoint holds."""
        import yaml

        try:
            stored = yaml.safe_load((self.run_dir / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            return
        now = self.config.get("model")
        before = stored.get("model") or {}
        if not isinstance(before, dict) or now is None:
            return
        now_init = now.get("init_args") or {}
        before_init = before.get("init_args") or {}
        changes = []
        if before.get("class_path") and before.get("class_path") != now.get("class_path"):
            changes.append(f"model {before.get('class_path')} -> {now.get('class_path')}")
        for key in ("space", "network"):
            a = before_init.get(key)
            b = now_init.get(key)
            b = b.as_dict() if isinstance(b, Namespace) else b
            if a is not None and b is not None and a != b:
                changes.append(f"model.init_args.{key} {a} -> {b}")
        if changes:
            raise RecipeError(f"--resume {self.run_dir}: the options change the network its checkpoint holds "
                              f"({'; '.join(changes)}); resume with the run's own recipe, or start a new run "
                              "with another --run_dir")

    def _check_validation_split(self) -> None:
        """Ranking and selection score architectures on the validation split: an empty one is refused
        now, not after the first epoch of training."""
        def found(kind: type) -> Any:
            return next((c for c in self.trainer.callbacks if isinstance(c, kind)), None)

        ranking, selection = found(WeightSharingRanking), found(FinalSelection)
        users = []
        if ranking is not None and ranking.num_architectures > 0 and getattr(self.model, "trains", True):
            users.append("ranking")
        derived = getattr(self.model, "answer", "selection") != "selection"  # a derived answer is scored too
        if selection is not None and (selection.num_architectures > 0 or derived):
            users.append("selection")
        split_batches = getattr(self.datamodule, "split_batches", None)
        if not users or split_batches is None:
            return
        if next(iter(split_batches("val", limit=1)), None) is None:
            raise RecipeError(f"{' and '.join(users)} score architectures on the validation split, which holds no "
                              f"batch: set data.val_split (or {users[0]}.num_architectures: 0)")

    @property
    def checkpoint_path(self) -> Path:
        return last_checkpoint(self.run_dir)

    def instantiate_classes(self) -> None:
        if self.experiment:  # an experiment only parses here; each trial is a run of its own
            return
        with self._undone_on_failure():
            try:
                super().instantiate_classes()
            except OSError as error:  # the trainer creates the run directory: a read-only mount, a full disk
                if error.filename is None or not _inside(Path(str(error.filename)), self.run_dir):
                    raise
                raise RecipeError(f"run_dir {self.run_dir} cannot be written ({error.strerror}); "
                                  "choose a writable --run_dir") from error

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        loggers: list[Logger] = []
        if "csv" in config.loggers:
            loggers.append(RunCSVLogger(str(self.run_dir), resume_from=self.checkpoint if config.get("resume") else None))
        if "wandb" in config.loggers:
            loggers.append(wandb_logger(config.wandb_project, self.run_dir))
        checkpoint = RunCheckpoint(str(self.run_dir / "checkpoints"), config.checkpoint_every_n_steps,
                                   stop_at_epoch=config.get("stop_at_epoch"))
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(trainer_config.get("callbacks") or []) + [checkpoint]
        if trainer_config.get("enable_progress_bar") is not False and not sys.stdout.isatty() \
                and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(PlainProgress())
        strategy = trainer_config.get("strategy")
        if isinstance(strategy, str) and strategy == "ddp":
            # A single-path step leaves most super-net parameters unused, which plain DDP rejects.
            # With detection on, parameters unused on every rank keep ``grad=None`` and SGD skips them.
            kwargs.setdefault("strategy", "ddp_find_unused_parameters_true")
        # checkpoints written beside themselves (never through $TMPDIR), unless the recipe names its own writer
        plugins = trainer_config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(RunCheckpointIO())
        try:
            return super().instantiate_trainer(default_root_dir=str(self.run_dir), logger=loggers or False,
                                               callbacks=callbacks, plugins=plugins, **kwargs)
        except MisconfigurationException as error:  # Lightning's own check of a trainer.* value
            raise RecipeError(f"trainer: {error}") from None

    # ------------------------------------------------------------------ running
    def fit(self) -> Trainer:
        seed = self.config.seed_everything
        resume = self.config.get("resume")
        with self._undone_on_failure():
            # Checks that need the built objects, before the run directory is claimed and recorded.
            if resume and self.checkpoint is not None:
                check_checkpoint_fits(self.checkpoint, self.model, self.run_dir)
            benchmark = self._get(self.config_init, "benchmark", default=None)
            space = getattr(self.model, "space", None)
            if benchmark is not None and space is not None and hasattr(benchmark, "check"):
                benchmark.check(space)  # table problems before the first step, not at the first ranking epoch
            self._check_validation_split()
            if not resume:
                self._lock()
                self._check_no_run_there()  # under the lock: another command may have started it meanwhile
            if self.trainer.is_global_zero:
                extra = {"resumed_from": str(self.checkpoint)} if resume else {}
                if self.reproduce is not None:
                    extra["reproduces"] = str(self.reproduce)
                write_run_record(self.run_dir, seed, self.raw_args, event="resume" if resume else "start", **extra)
            if self.start is not None:
                self.trainer.callbacks.append(TrainingStarted(self.start))
            ckpt = str(self.checkpoint) if resume else None
            self.trainer.fit(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
        # stand-alone networks report the official test split, where the data has one (PTB samples may not)
        if is_overridden("test_step", self.model) and getattr(self.datamodule, "has_test", True):
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        return self.trainer


def _inside(path: Path, directory: Path) -> bool:
    path, directory = path.absolute(), directory.absolute()
    return path == directory or directory in path.parents


# ---------------------------------------------------------------------------------------- one command
def run(argv: list[str], experiment: Any = None) -> int:
    """One ``train.py`` command: a run, a resume, a reproduction, or (with ``experiment``, a callable
    taking the parser and the parsed config) an experiment. Raises the project's errors, and
    ``signals.Interrupted`` after a stop signal; releases the run directory and thread count it took."""
    threads = torch.get_num_threads()
    cli: NASCLI | None = None
    try:
        with quiet_third_parties():
            cli = NASCLI(args=list(argv))
            if cli.experiment:
                if experiment is None:
                    raise RecipeError("--seeds/--grid start an experiment; a trial cannot start another")
                return experiment(cli.parser, cli.config)
            try:
                trainer = cli.fit()
            except BaseException as error:
                signum = signals.pending()
                if signum is not None and not isinstance(error, signals.Interrupted) \
                        and isinstance(error, (SystemExit, KeyboardInterrupt)):
                    raise signals.Interrupted(signum, "training") from None
                raise
        if trainer.is_global_zero:
            summarise(cli.run_dir)
            if cli.reproduce is not None:  # exit status 1 when the rerun's results differ
                return 0 if report(cli.reproduce, cli.run_dir) else 1
        return 0
    except signals.Interrupted as stop:
        stop.run_dir = getattr(cli, "run_dir", None)  # type: ignore[attr-defined]
        raise
    finally:
        release_locks()
        torch.set_num_threads(threads)
