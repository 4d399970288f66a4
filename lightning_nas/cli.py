"""The command line behind ``train.py``: LightningCLI with recipes, run directories and resumption.

A recipe is a LightningCLI config (YAML) with the sections ``trainer``, ``model`` (a strategy),
``data`` (a DataModule), ``benchmark`` (ground truth, optional), ``ranking`` and ``selection``
(the two callbacks) and a few run options. Any value can be overridden on the command line
(``--ranking.bn_mode running``). Everything is parsed and type-checked by jsonargparse, including
the options that decide what kind of run this is (``--resume``, ``--reproduce``, ``--seeds``,
``--grid`` and the experiment options); this module decides where the run lives, guards its
directory (lock, checkpoints, thread count) and what it writes there.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import torch
from jsonargparse import ActionConfigFile, Namespace
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveInt
from pytorch_lightning import LightningDataModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.callbacks.progress import ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from pytorch_lightning.utilities.model_helpers import is_overridden

import lightning_nas
from callbacks import ArchitectureDecoding, FinalSelection, WeightSharingRanking
from lightning_nas import signals
from lightning_nas.benchmarks import Benchmark
from lightning_nas.errors import LightningNASError, RecipeError
from lightning_nas.loggers import RunCSVLogger
from lightning_nas.run_record import recorded_threads, write_run_record
from lightning_nas.strategies import SearchStrategy

__all__ = ["NASCLI", "RecipeError", "CheckpointError", "RunLockedError", "run", "concise", "project_error",
           "summarise", "FRONT_OPTIONS"]

LAST, PREVIOUS = "last.ckpt", "last.prev.ckpt"
LOCK_FILE = ".lock"
# Options that say what kind of run this is; never written to config.yaml (a run's resolved recipe
# must not make the next command that reads it a resume, an experiment or a thread-count override).
FRONT_OPTIONS = {"resume": None, "reproduce": None, "seeds": None, "grid": [], "experiment_dir": None,
                 "ray_address": None, "num_cpus": None, "gpus_per_trial": 0.0, "max_concurrent": 0,
                 "allow_thread_change": False}


class CheckpointError(RecipeError):
    """A checkpoint that cannot be resumed from (missing, truncated, corrupt, or of another network)."""


class RunLockedError(RecipeError):
    """Another process holds the run directory."""


# ---------------------------------------------------------------------------------------- errors
def concise(message: str) -> str:
    """jsonargparse reports a failing subclass as every Union member's error, and a failing link
    (e.g. the DataModule loading its data to tell the model its classes) with the link's
    internals; keep the real cause."""
    message = re.sub(r"Call to compute_fn of link .*? failed: ", "", str(message), flags=re.S)
    message = re.sub(r"Not of type (?:Positive|NonNegative)(Int|Float): (?:(\S+) )?does not conform to restriction "
                     r"v(>=?)0", lambda m: f"expected a{'n integer' if m.group(1) == 'Int' else ' number'} "
                     f"{m.group(3)} 0" + (f", got {m.group(2)}" if m.group(2) else ""), message)
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


def project_error(error: BaseException) -> LightningNASError | None:
    """The project's own error behind ``error`` (itself, or what jsonargparse or Lightning wrapped), else None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, LightningNASError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


# ---------------------------------------------------------------------------------------- parser
class RecipeParser(LightningArgumentParser):
    """Parse errors as one readable message instead of usage text and a stack trace."""

    def error(self, message: str, ex: Exception | None = None):  # type: ignore[override]
        cause = project_error(ex) if ex is not None else None
        raise RecipeError(str(cause) if cause is not None else message)


class _RunDirectoryAction(argparse.Action):
    """``--resume RUN_DIR`` / ``--reproduce RUN_DIR``: read the run's resolved recipe (``config.yaml``)
    as if given with ``--recipe``; options after it override its values."""

    def __call__(self, parser, cfg, values, option_string=None):  # type: ignore[override]
        recipe = Path(str(values)) / "config.yaml"
        if not recipe.is_file():
            raise RecipeError(f"{option_string} {values}: {recipe} not found; is this a lightning_nas run directory?")
        ActionConfigFile.apply_config(parser, cfg, "recipe", str(recipe))
        for key, default in FRONT_OPTIONS.items():  # config.yaml of older versions may hold them
            if key in cfg:
                cfg[key] = default
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
    group.add_argument("--loggers", type=list[Literal["csv", "wandb"]], default=["csv"],
                       help="csv writes RUN_DIR/metrics.csv; wandb logs through WandbLogger "
                            "(WANDB_MODE=offline works without a network).")
    group.add_argument("--wandb_project", type=str, default="lightning_nas")
    experiment = parser.add_argument_group(
        "Experiments", "A recipe over seeds x a grid of values on Ray Tune, one run directory per trial "
                       "(docs/experiments.md).")
    experiment.add_argument("--seeds", type=Optional[str], default=None,
                            help="Seeds of every grid point: 0-9, 0,3,7 or 0-2,5.")
    experiment.add_argument("--grid", action="append", type=str, default=[], metavar="KEYS=V1,V2",
                            help="One factor: a recipe key and its values (ranking.bn_mode=batch,running); tied "
                                 "keys K1,K2=V1,V2 take each value together; repeat for a cartesian product.")
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
        config = config.clone()
        for key, default in FRONT_OPTIONS.items():
            if key in config:
                config[key] = default
        super().__init__(parser, config, *args, **kwargs)


# ---------------------------------------------------------------------------------------- checkpoints
def read_checkpoint(path: Path) -> tuple[dict | None, str]:
    """(the checkpoint, "") or (None, why it cannot be read). Memory-mapped: cheap for a check."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True), ""
    except FileNotFoundError:
        return None, "missing"
    except Exception as error:  # a truncated zip, a bad pickle, a wrong format: all mean "unusable"
        return None, (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def choose_checkpoint(run_dir: Path, set_aside: bool = True) -> Path:
    """The newest readable ``last*.ckpt`` of a run. A corrupt ``last.ckpt`` is set aside (renamed
    ``last.ckpt.corrupt``) with one warning when an earlier checkpoint (``last.prev.ckpt``) exists;
    otherwise one error line names it."""
    folder = run_dir / "checkpoints"
    last = folder / LAST
    candidates = sorted(folder.glob("last*.ckpt")) if folder.is_dir() else []
    if not candidates:
        raise CheckpointError(f"--resume {run_dir}: no checkpoint {last} to resume from")
    readable: list[tuple[int, Path]] = []
    broken: list[tuple[Path, str]] = []
    for path in candidates:
        checkpoint, why = read_checkpoint(path)
        step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
        if isinstance(step, int):
            readable.append((step, path))
        else:
            broken.append((path, why or "not a Lightning checkpoint"))
    if not readable:
        path, why = broken[0]
        raise CheckpointError(f"--resume {run_dir}: checkpoint {path} is truncated or corrupt ({why}) and there is "
                              f"no earlier checkpoint ({folder / PREVIOUS}) to fall back to; start again with "
                              "another --run_dir")
    step, chosen = max(readable, key=lambda item: (item[0], item[1].name == LAST))
    for path, why in broken:
        if path == last and set_aside:  # set aside, so that the next save does not rotate it into last.prev.ckpt
            last.replace(last.with_name(LAST + ".corrupt"))
        print(f"[lightning_nas] warning: checkpoint {path} is truncated or corrupt ({why}); resuming from "
              f"{chosen} (step {step})", file=sys.stderr, flush=True)
    return chosen


class RunCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt`` is always the newest checkpoint (also after the run directory moved:
    no ``last-v1.ckpt``), the one before it stays as ``last.prev.ckpt`` (the fallback when the newest
    is damaged), and a pending SIGTERM/SIGINT saves one at the end of the current step and stops the
    run through Lightning's own SIGTERM exit (after the step's metrics are logged)."""

    def __init__(self, dirpath: str, every_n_train_steps: int) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)
        self.stopped_at: int | None = None

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        path = Path(filepath)
        if trainer.is_global_zero and path.name == LAST and path.is_file():
            keep = path.with_name(f".{os.getpid()}.{PREVIOUS}")
            try:
                os.link(path, keep)  # the old file stays in place as last.ckpt until the new one replaces it
            except OSError:
                import shutil

                shutil.copyfile(path, keep)
            os.replace(keep, path.with_name(PREVIOUS))
        super()._save_checkpoint(trainer, filepath)  # atomic (TorchCheckpointIO -> temporary file + rename)

    def on_train_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, *args, **kwargs)
        if signals.pending() is None or trainer.world_size > 1 or self.stopped_at is not None:
            return  # (DDP: Lightning's own SIGTERM handling stops every rank; the last periodic checkpoint counts)
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self.stopped_at = trainer.global_step
        trainer._signal_connector.received_sigterm = True  # Lightning stops after logging this step


class PlainProgress(ProgressBar):
    """Progress for logs (stdout not a terminal): a plain line per epoch at most every ``interval`` seconds
    (and the first and last epoch), no carriage returns or cursor movement."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._enabled = True
        self._last = 0.0
        self._start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        self._start = self._last = time.monotonic()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: Any) -> None:
        # the previous epoch's metrics are complete only now (Lightning reduces them after on_train_epoch_end)
        if trainer.current_epoch > 0 and (trainer.current_epoch == 1 or time.monotonic() - self._last >= self.interval):
            self._line(trainer, pl_module, trainer.current_epoch)

    def on_train_end(self, trainer: Trainer, pl_module: Any) -> None:
        self._line(trainer, pl_module, trainer.current_epoch)

    def _line(self, trainer: Trainer, pl_module: Any, epochs_done: int) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        now = self._last = time.monotonic()
        metrics = self.get_metrics(trainer, pl_module)
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                          if k != "v_num" and not k.endswith("_step"))
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        print(f"[lightning_nas] epoch {epochs_done}{total}, step {trainer.global_step}"
              + (f": {shown}" if shown else "") + f" ({now - self._start:.0f} s)", flush=True)


# ---------------------------------------------------------------------------------------- run directory lock
_held_locks: list[tuple[int, Path]] = []


def lock_run_directory(run_dir: Path) -> None:
    """Hold ``RUN_DIR/.lock`` (flock) until the process ends or ``release_locks``; refuse when another holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunLockedError(f"run directory {run_dir} is in use by {holder}; wait for it to end (or stop it) "
                             "before running or resuming it again") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
    _held_locks.append((fd, run_dir))


def release_locks() -> None:
    """Release the locks this process took; a run directory that holds nothing but its lock (the
    command failed before writing anything) is removed again."""
    while _held_locks:
        fd, run_dir = _held_locks.pop()
        with contextlib.suppress(OSError):
            if [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                (run_dir / LOCK_FILE).unlink()
                run_dir.rmdir()
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _is_launcher_process() -> bool:
    """Rank 0 of node 0 (or a single process): the one that guards and records the run directory."""
    return all(os.environ.get(name, "0") in ("", "0") for name in ("LOCAL_RANK", "NODE_RANK"))


# ---------------------------------------------------------------------------------------- validation
def _check_range(key: str, value: Any, minimum: int, allowed: tuple = (), why: str = "") -> None:
    if value is None or value in allowed:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        extra = f" (or {', '.join(map(str, allowed))})" if allowed else ""
        raise RecipeError(f"{key} must be at least {minimum}{extra}, got {value!r}" + (f": {why}" if why else ""))


def _model_trains(model: Any) -> bool:
    """False for a strategy class that trains nothing (``SearchStrategy.trains``)."""
    import importlib

    path = getattr(model, "class_path", None) if model is not None else None
    if not isinstance(path, str) or "." not in path:
        return True
    module, _, name = path.rpartition(".")
    try:
        return bool(getattr(importlib.import_module(module), name).trains)
    except (ImportError, AttributeError):
        return True


def validate_trainer(trainer: Any, trains: bool = True) -> None:
    """The Trainer values that Lightning accepts silently (or with a traceback) but that make no run.

    ``trains`` is False for strategies that train nothing (the random-sampling baseline), which
    may run zero epochs."""
    get = (lambda key: trainer.get(key)) if trainer is not None else (lambda key: None)
    _check_range("trainer.max_epochs", get("max_epochs"), 1 if trains else 0, (-1,),
                 "fewer than one epoch would rank and select an untrained super-net")
    _check_range("trainer.max_steps", get("max_steps"), 1, (-1,), "no step would train anything")
    _check_range("trainer.min_epochs", get("min_epochs"), 0)
    _check_range("trainer.min_steps", get("min_steps"), 0)
    _check_range("trainer.log_every_n_steps", get("log_every_n_steps"), 1)
    _check_range("trainer.check_val_every_n_epoch", get("check_val_every_n_epoch"), 1)
    _check_range("trainer.accumulate_grad_batches", get("accumulate_grad_batches"), 1)
    limit = get("limit_train_batches")
    fraction = isinstance(limit, float) and not limit.is_integer()  # jsonargparse reads "3" as 3.0
    if limit is not None and (isinstance(limit, bool) or limit <= 0 or (fraction and limit > 1)):
        raise RecipeError(f"trainer.limit_train_batches must be a count >= 1 or a fraction in (0, 1], got {limit!r}")


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
        parser.add_argument("--recipe", "-c", "--config", action=ActionConfigFile,
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
    def before_instantiate_classes(self) -> None:
        config = self.config
        seed = config.seed_everything
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise RecipeError(f"seed_everything must be an integer seed (got {seed!r}): every run is seeded")
        self.experiment = config.get("seeds") is not None or bool(config.get("grid"))
        if self.experiment:
            if config.get("resume") or config.get("reproduce"):
                raise RecipeError("--seeds/--grid cannot be combined with --resume or --reproduce "
                                  "(rerun the experiment command to resume its unfinished trials)")
            return
        if config.get("resume") and config.get("reproduce"):
            raise RecipeError("--resume and --reproduce cannot be combined")
        validate_trainer(config.get("trainer"), trains=_model_trains(config.get("model")))
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
        self.run_dir = Path(config.run_dir)
        self._set_threads()
        if _is_launcher_process():
            lock_run_directory(self.run_dir)
        if not resume and (self.run_dir / "checkpoints").exists():
            raise RecipeError(f"run directory {self.run_dir} already holds a run: continue it with "
                              f"--resume {self.run_dir}, or choose another --run_dir")
        if resume:
            self._check_same_network()
            # (DDP processes started by rank 0 choose the same checkpoint, after rank 0 set a damaged one aside)
            self.checkpoint = choose_checkpoint(self.run_dir, set_aside=_is_launcher_process())

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
            from lightning_nas.experiments.reproduce import use_recorded_threads

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

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / LAST

    def instantiate_classes(self) -> None:
        if self.experiment:  # an experiment only parses here; each trial is a run of its own
            return
        super().instantiate_classes()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        loggers: list[Logger] = []
        if "csv" in config.loggers:
            loggers.append(RunCSVLogger(str(self.run_dir), resume_from=self.checkpoint if config.get("resume") else None))
        if "wandb" in config.loggers:
            loggers.append(wandb_logger(config.wandb_project, self.run_dir))
        checkpoint = RunCheckpoint(str(self.run_dir / "checkpoints"), config.checkpoint_every_n_steps)
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
        try:
            return super().instantiate_trainer(default_root_dir=str(self.run_dir), logger=loggers or False,
                                               callbacks=callbacks, **kwargs)
        except MisconfigurationException as error:  # Lightning's own check of a trainer.* value
            raise RecipeError(f"trainer: {error}") from None

    # ------------------------------------------------------------------ running
    def fit(self) -> Trainer:
        seed = self.config.seed_everything
        resume = self.config.get("resume")
        if self.trainer.is_global_zero:
            extra = {"resumed_from": str(self.checkpoint)} if resume else {}
            if self.reproduce is not None:
                extra["reproduces"] = str(self.reproduce)
            write_run_record(self.run_dir, seed, self.raw_args, event="resume" if resume else "start", **extra)
        if resume and self.checkpoint is not None:
            check_checkpoint_fits(self.checkpoint, self.model, self.run_dir)
        benchmark = self._get(self.config_init, "benchmark", default=None)
        space = getattr(self.model, "space", None)
        if benchmark is not None and space is not None and hasattr(benchmark, "check"):
            benchmark.check(space)  # table problems before the first step, not at the first ranking epoch
        ckpt = str(self.checkpoint) if resume else None
        self.trainer.fit(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
        if is_overridden("test_step", self.model):  # stand-alone networks: report the official test split
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        return self.trainer


def check_checkpoint_fits(checkpoint: Path, model: Any, run_dir: Path) -> None:
    """One line instead of Lightning's size-mismatch traceback when the recipe changed the network."""
    saved, _ = read_checkpoint(checkpoint)
    state = (saved or {}).get("state_dict") if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        return
    own = model.state_dict()
    differ = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
              if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    if differ:
        key, a, b = differ[0]
        raise CheckpointError(f"--resume {run_dir}: the options change the network its checkpoint holds "
                              f"({len(differ)} tensors differ, e.g. {key} {list(a)} -> {list(b)}); resume with the "
                              "run's own recipe, or start a new run with another --run_dir")


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
        logger.experiment  # starts the run now: a failure is a message, not a traceback mid-training
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RecipeError(f"--loggers wandb: W&B could not start ({first}): {hint}") from None
    return logger


def reproduction_directory(original: Path) -> Path:
    """Beside the run, or beside its experiment (``DIR-reproduce/<trial>``), never inside an experiment
    directory, whose report would count the reproduction as one more group."""
    from lightning_nas.experiments.design import EXPERIMENT_RECORD

    parent = original.resolve().parent
    if (parent / EXPERIMENT_RECORD).is_file():
        return original.parent.with_name(original.parent.name + "-reproduce") / original.name
    return original.with_name(original.name + "-reproduce")


# ---------------------------------------------------------------------------------------- one command
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
                        ".*The number of training batches .* is smaller than the logging interval.*"):
            warnings.filterwarnings("ignore", message=message)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


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
                from lightning_nas.experiments.reproduce import report

                return 0 if report(cli.reproduce, cli.run_dir) else 1
        return 0
    except signals.Interrupted as stop:
        stop.run_dir = getattr(cli, "run_dir", None)  # type: ignore[attr-defined]
        raise
    finally:
        release_locks()
        torch.set_num_threads(threads)


def interrupted_message(stop: signals.Interrupted) -> str:
    run_dir = getattr(stop, "run_dir", None)
    if run_dir is None:
        return f"stopped by {stop.name} before the run started"
    checkpoint = Path(run_dir) / "checkpoints" / LAST
    saved, _ = read_checkpoint(checkpoint)
    where = f" during {stop.where}" if stop.where and stop.where != "training" else ""
    if not isinstance(saved, dict):
        return f"stopped by {stop.name}{where} before the first checkpoint; start it again (nothing to resume)"
    return (f"stopped by {stop.name}{where}; checkpoint {checkpoint} (step {saved.get('global_step')}); "
            f"continue with: python train.py --resume {run_dir}")


# ---------------------------------------------------------------------------------------- summary
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
