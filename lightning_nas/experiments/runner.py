"""Run a recipe over seeds x a grid of factor values with Ray Tune, one ordinary run directory per trial.

    python train.py --recipe R --seeds 0-9 --grid ranking.bn_mode,selection.bn_mode=batch,running \
        [--experiment_dir DIR] [--ray_address ADDR] [--num_cpus N] [--gpus_per_trial G] [--max_concurrent K]
        [other overrides]

The experiment options are ordinary parser options of ``train.py`` (``lightning_nas.cli``); this module
receives the parsed command. ``--experiment_dir`` defaults to ``runs/experiments/<recipe name>``.

Ray Tune only schedules: the command's resolved recipe is written to ``DIR/recipe.yaml`` and each
trial runs ``lightning_nas.cli.run`` with it, the trial's factor values, ``--seed_everything`` and
``--run_dir DIR/<trial name>``,
so a trial directory is exactly what ``train.py`` alone would have written (plus ``trial.json``
and ``train.log``). Locally Ray starts a private cluster of ``--num_cpus`` (default: all cores);
with ``--ray_address`` the same code runs on an existing cluster, which must see the project on
``PYTHONPATH`` and the experiment directory on a shared file system.

Rerunning the same command skips finished trials, resumes killed ones from their last checkpoint
(bit-identically on CPU) and restarts failed ones; a failed trial never stops the others.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

from lightning_nas.cli import NASCLI, run
from lightning_nas.experiments.design import (
    FINISHED, ExperimentError, Factor, Trial, expand, parse_grid, parse_seeds, pending)
from lightning_nas.io import atomic_write_json, atomic_write_text
from lightning_nas.run.front_options import FRONT_OPTIONS
from lightning_nas.run.errors import concise
from lightning_nas.run_record import EXPERIMENT_RECORD, TRIAL_RECORD

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def experiment_main(parser: Any, config: Any) -> int:
    """``train.py --seeds/--grid``: the parsed command (``parser``, ``config``: what ``lightning_nas.cli``
    parsed, experiment options included); check every grid point parses, then run the pending trials.
    ``--tune`` goes to the tuner (``lightning_nas.tuning``)."""
    if config.get("tune"):
        from lightning_nas.tuning.runner import tuning_main

        return tuning_main(parser, config)
    if config.get("run_dir") is not None:
        raise ExperimentError("--run_dir: each trial gets its own run directory; use --experiment_dir with --seeds/--grid")
    seeds = parse_seeds(config.seeds) if config.get("seeds") is not None else None
    factors = parse_grid(list(config.get("grid") or []))
    recipes = config.get("recipe") or []
    recipe_name = Path(str(recipes[-1])).stem if recipes else "run"
    root = Path(config.experiment_dir) if config.get("experiment_dir") else Path("runs") / "experiments" / recipe_name
    text = resolved_recipe(parser, config)
    recipe_seed = validate(["--recipe", text], factors, seeds[0] if seeds else None)  # before writing anything
    argv = ["--recipe", str(write_recipe(text, root))]
    seeds = seeds if seeds is not None else [recipe_seed]
    trials = expand(factors, seeds)
    return run_experiment(trials, argv, root, factors, seeds, address=config.get("ray_address"),
                          num_cpus=config.get("num_cpus"), gpus_per_trial=float(config.get("gpus_per_trial") or 0.0),
                          max_concurrent=int(config.get("max_concurrent") or 0))


def resolved_recipe(parser: Any, config: Any) -> str:
    """The experiment's resolved recipe (every trial starts from it), without the experiment options:
    they are dropped, not written as defaults (a repeatable option's empty default does not read back
    as empty from YAML)."""
    import yaml

    recipe = yaml.safe_load(parser.dump(config, skip_none=False))
    for key in (*FRONT_OPTIONS, "run_dir"):
        if key != "threads":  # an explicit --threads is kept
            recipe.pop(key, None)
    return yaml.safe_dump(recipe, sort_keys=False)


def write_recipe(text: str, root: Path) -> Path:
    """``EXPERIMENT_DIR/recipe.yaml``, rewritten only when the command changed it."""
    path = root / "recipe.yaml"
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)
    return path


def validate(argv: list[str], factors: list[Factor], seed: int | None) -> int:
    """Parse (without building anything) the recipe at every grid point: a bad key or value fails
    here, with the normal recipe error, before any trial starts. Returns the recipe's seed."""
    import itertools

    class ParseOnly(NASCLI):
        def before_instantiate_classes(self) -> None:
            pass

        def instantiate_classes(self) -> None:
            pass

    seed_args = ["--seed_everything", str(seed)] if seed is not None else []
    combos = list(itertools.product(*(f.values for f in factors))) or [()]
    config = None
    for combo in combos:
        overrides = [arg for f, v in zip(factors, combo, strict=True) for k in f.keys for arg in (f"--{k}", v)]
        config = ParseOnly(args=[*argv, *seed_args, *overrides]).config  # the CLI rejects abbreviated keys
    recipe_seed = config.seed_everything
    if isinstance(recipe_seed, bool) or not isinstance(recipe_seed, int):
        raise ExperimentError(f"seed_everything must be an integer seed (got {recipe_seed!r})")
    return recipe_seed


def trial_spec(trial: Trial, argv: list[str], root: Path, threads: int) -> dict[str, Any]:
    """Everything a worker needs, as plain data (it crosses process and machine boundaries)."""
    run_dir = (root / trial.name).resolve()
    return {**trial.record(), "run_dir": str(run_dir), "cwd": str(Path.cwd().resolve()), "threads": threads,
            "arguments": [*argv, *trial.overrides, "--seed_everything", str(trial.seed), "--run_dir", str(run_dir)]}


def run_experiment(trials: list[Trial], argv: list[str], root: Path, factors: list[Factor], seeds: list[int], *,
                   address: str | None = None, num_cpus: int | None = None, gpus_per_trial: float = 0.0,
                   max_concurrent: int = 0) -> int:
    """Run the trials that have not finished through Ray Tune; print one line per trial."""
    root.mkdir(parents=True, exist_ok=True)
    todo, done = pending(trials, root)
    atomic_write_json(root / EXPERIMENT_RECORD, {
        "arguments": argv, "cwd": str(Path.cwd().resolve()), "seeds": seeds,
        "grid": [{"label": f.label, "keys": list(f.keys), "values": list(f.values)} for f in factors],
        "trials": [t.name for t in trials], "ray_address": address, "updated": _now()})
    threads = max(1, int(os.environ.get("LIGHTNING_NAS_TRIAL_THREADS", "1")))
    specs = [trial_spec(t, argv, root, threads) for t in todo]
    print(f"[lightning_nas] experiment {root}: {len(trials)} trials, {len(done)} finished earlier, {len(todo)} to run",
          flush=True)
    outcomes = run_with_ray(specs, root, address, num_cpus, gpus_per_trial, max_concurrent) if specs else {}
    lines, failed = [], 0
    for trial in trials:
        if trial in done:
            lines.append(f"  skipped   {trial.name} (finished earlier)")
            continue
        status, error = outcomes.get(trial.name, ("failed", "no result from Ray"))
        failed += status != FINISHED
        lines.append(f"  {status:<9} {trial.name}" + (f": {error}" if error else ""))
    print("\n".join(lines))
    print(f"[lightning_nas] {len(trials) - failed} of {len(trials)} trials finished"
          + (f", {failed} failed (rerun the command to retry them; logs in <trial>/train.log)" if failed else "")
          + f"\n  report: python -m lightning_nas.report {root}")
    return 1 if failed else 0


def start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Start (or join, with ``address``) a Ray cluster whose workers import this checkout; False when
    Ray was already running in this process (the caller then leaves it running)."""
    import ray

    if ray.is_initialized():
        return False
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}}, logging_level="WARNING")
    return True


def run_with_ray(specs: list[dict[str, Any]], root: Path, address: str | None, num_cpus: int | None,
                 gpus_per_trial: float, max_concurrent: int) -> dict[str, tuple[str, str]]:
    """Hand the trials to Ray Tune (a private local cluster unless ``address``); name -> (status, error)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ExperimentError("--seeds/--grid run trials on Ray Tune, which is not installed: "
                              "pip install 'ray[tune]' (or pip install -e '.[experiments]')") from None

    started = start_ray(address, num_cpus)
    try:
        resources = {"cpu": 1, **({"gpu": gpus_per_trial} if gpus_per_trial else {})}
        tuner = tune.Tuner(
            tune.with_resources(tune_trainable, resources),
            param_space={"trial": tune.grid_search(specs)},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or None, reuse_actors=False,
                                        trial_name_creator=_tune_name, trial_dirname_creator=_tune_name),
            run_config=tune.RunConfig(name=time.strftime("%Y%m%d-%H%M%S"), storage_path=str((root / ".tune").resolve()),
                                      verbose=0, callbacks=[_progress_callback(len(specs))],
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)))
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    outcomes: dict[str, tuple[str, str]] = {}
    for result in results:
        spec = result.config["trial"]
        if result.error is not None:  # the worker died (killed, out of memory): say so in trial.json too
            error = (str(result.error).strip().splitlines() or ["unknown error"])[-1]
            _mark_failed(Path(spec["run_dir"]), spec, error)
            outcomes[spec["name"]] = ("failed", error)
        else:
            outcomes[spec["name"]] = (result.metrics.get("status", "failed"), result.metrics.get("error") or "")
    return outcomes


def _progress_callback(total: int) -> Any:
    """One line per trial as it ends, instead of Tune's status tables."""
    from ray.tune import Callback

    class Progress(Callback):
        done = 0

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trial, (trial.last_result or {}).get("status", "?"))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trial, "crashed")

        def _line(self, trial: Any, status: str) -> None:
            self.done += 1
            print(f"[lightning_nas] [{self.done}/{total}] {status} {_tune_name(trial)}", flush=True)

    return Progress()


def _tune_name(trial: Any) -> str:
    return trial.config["trial"]["name"]


def _mark_failed(run_dir: Path, spec: dict[str, Any], error: str) -> None:
    try:
        record = json.loads((run_dir / TRIAL_RECORD).read_text())
    except (OSError, ValueError):
        record = {key: spec[key] for key in ("name", "seed", "factors")}
    if record.get("status") != FINISHED:
        atomic_write_json(run_dir / TRIAL_RECORD, {**record, "status": "failed", "error": error, "finished": _now()})


def tune_trainable(config: dict[str, Any]) -> None:
    """What Ray runs in a worker: one trial, reported back as its status."""
    from ray import tune

    tune.report(execute_trial(config["trial"]))


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors too: progress bars, warnings) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def execute_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one trial through train.py's own main: fresh, or resumed from its last checkpoint after a kill
    (then with ``spec["then"]``, arguments for either case, e.g. tuning's ``--stop_at_epoch``).

    Never raises: a failure is written to ``trial.json`` (one line) and ``train.log`` (traceback).
    """
    import torch

    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    resume = any((run_dir / "checkpoints").glob("last*.ckpt"))
    argv = (["--resume", str(run_dir)] if resume else list(spec["arguments"])) + list(spec.get("then", []))
    record = {key: spec[key] for key in ("name", "seed", "factors")}
    record.update(status="running", arguments=argv, resumed=resume, host=socket.gethostname(), started=_now())
    atomic_write_json(run_dir / TRIAL_RECORD, record)
    cwd, argv0, threads = Path.cwd(), sys.argv[0] if sys.argv else "", torch.get_num_threads()
    error, code, start = None, None, time.monotonic()
    try:
        os.chdir(spec["cwd"])  # Ray workers start elsewhere; recipes name paths relative to the launch
        torch.set_num_threads(int(spec.get("threads", 1)))
        sys.argv[:1] = ["train.py"]  # run.json records the command as train.py's
        with output_to(run_dir / "train.log"):
            try:
                code = run(argv)
            except (Exception, SystemExit) as exc:
                traceback.print_exc()
                error = f"{type(exc).__name__}: {concise(str(exc))}"
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        if sys.argv:
            sys.argv[0] = argv0
    if error is None and code != 0:
        error = f"train.py exited with status {code}"
    record.update(status=FINISHED if error is None else "failed", error=error, finished=_now(),
                  seconds=round(time.monotonic() - start, 1))
    atomic_write_json(run_dir / TRIAL_RECORD, record)
    return {"status": record["status"], "error": error or ""}
