"""Tune a recipe on Ray Tune: BOHB (``TuneBOHB`` + ``HyperBandForBOHB``), ASHA or Hyperband.

    python train.py --recipe R --tune recipes/tuning/digits_darts_cs2.yaml [--experiment_dir DIR]
        [--ray_address ADDR] [--num_cpus N] [--max_concurrent K] [other overrides]

Every trial is one ordinary run directory ``DIR/trial_<id>`` of ``train.py`` (the experiment's
``recipe.yaml`` + the configuration's values + ``--run_dir``), so ``--reproduce``, the report and
``python -m lightning_nas.results extract`` read it as any run.

Fidelity is the number of search epochs (NAS-Bench-1Shot1 App. F.1: min 25, max 100, eta 2). A trial
runs with the recipe's ``trainer.max_epochs`` (the maximum fidelity) and stops at each rung with
``--stop_at_epoch`` (checkpoint, final selection, objective); a promoted trial continues the same run
with ``--resume``, which is bit-identical to the run that never stopped (the cosine schedule and GDAS'
temperature span max_epochs in both). This differs from the paper, whose BOHB worker started a fresh
search of ``budget`` epochs per evaluation (``--epochs budget``: the cosine schedule reached its
minimum at every budget); docs/tuning.md says what that changes.

Ray Tune's trainables run ``train.py``'s main in the worker (``experiments.runner.execute_trial``);
the searcher and scheduler run in this process, timed (``tuning.json``: their overhead per trial).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from lightning_nas.experiments.runner import (_now, execute_trial, resolved_recipe, start_ray, validate,
                                              write_recipe)
from lightning_nas.io import atomic_write_json
from lightning_nas.run_record import EXPERIMENT_RECORD
from lightning_nas.tuning.objective import Validation, evaluate_answer
from lightning_nas.tuning.settings import Objective, Tuning, TuningError, check_keys, load_tuning

TRIAL_TUNING = "tuning_trial.json"
TUNING_RECORD = "tuning.json"


def tuning_main(parser: Any, config: Any) -> int:
    """``train.py --tune FILE``: check the tuning file against the recipe, then run the tuner."""
    import yaml

    if config.get("seeds") is not None or config.get("grid"):
        raise TuningError("--tune: every trial uses the recipe's seed; --seeds/--grid belong to grid experiments")
    if config.get("run_dir") is not None:
        raise TuningError("--run_dir: each trial gets its own run directory; use --experiment_dir with --tune")
    tuning = load_tuning(config.tune)
    if config.get("tune_seed") is not None:  # a repetition: the tuner's seed, as if the file said it
        import dataclasses

        tuning = dataclasses.replace(tuning, seed=int(config.tune_seed))
    recipes = config.get("recipe") or []
    recipe_name = Path(str(recipes[-1])).stem if recipes else "run"
    root = Path(config.experiment_dir) if config.get("experiment_dir") else \
        Path("runs") / "experiments" / f"{recipe_name}-{Path(tuning.path).stem}"
    text = resolved_recipe(parser, config)
    recipe = yaml.safe_load(text)
    validate(["--recipe", text], [], None)
    check_keys(tuning.space, lambda overrides: validate(["--recipe", text, *overrides], [], None))
    max_epochs = (recipe.get("trainer") or {}).get("max_epochs")
    if not isinstance(max_epochs, int) or max_epochs < 1:
        raise TuningError(f"--tune: the recipe's trainer.max_epochs ({max_epochs!r}) is the maximum fidelity; "
                          "set it (e.g. 100, NAS-Bench-1Shot1 App. F.1)")
    rungs = tuning.rungs(max_epochs)
    cutout = tuning.space.fixed.get("data.init_args.cutout", (recipe.get("data") or {}).get("init_args", {}).get("cutout"))
    if any("cutout_prob" in key for p in tuning.space.parameters for key in p.keys) and not cutout:
        raise TuningError(f"{tuning.space.path}: cutout_prob is tuned but data.init_args.cutout is 0 (no cutout "
                          "to apply); set a cutout length in the tuning file's fixed values")
    argv = ["--recipe", str(write_recipe(text, root).resolve())]
    return run_tuning(tuning, argv, root, rungs, seed=int(recipe.get("seed_everything", 0)),
                      strategy=str((recipe.get("model") or {}).get("class_path", "")).rsplit(".", 1)[-1],
                      address=config.get("ray_address"), num_cpus=config.get("num_cpus"),
                      gpus_per_trial=float(config.get("gpus_per_trial") or 0.0),
                      max_concurrent=int(config.get("max_concurrent") or 0))


class Timer:
    """Seconds spent in the searcher's and scheduler's methods (the tuner's own overhead)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def instrument(self, obj: Any, part: str, names: tuple[str, ...]) -> Any:
        for name in names:
            method = getattr(obj, name, None)
            if method is None:
                continue

            def timed(*args: Any, __method=method, __key=f"{part}.{name}", **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return __method(*args, **kwargs)
                finally:
                    self.seconds[__key] = self.seconds.get(__key, 0.0) + time.perf_counter() - start
                    self.calls[__key] = self.calls.get(__key, 0) + 1

            setattr(obj, name, timed)
        return obj

    def total(self, part: str) -> float:
        return sum(v for k, v in self.seconds.items() if k.startswith(part + "."))


SEARCHER_METHODS = ("suggest", "on_trial_result", "on_trial_complete", "on_pause", "on_unpause")
SCHEDULER_METHODS = ("on_trial_add", "on_trial_result", "on_trial_complete", "on_trial_error", "on_trial_remove",
                     "choose_trial_to_run")


def searcher_and_scheduler(tuning: Tuning, rungs: list[int], timer: Timer) -> tuple[Any, Any]:
    """BOHB: Ray's TuneBOHB with HyperBandForBOHB (Falkner et al. 2018); ASHA (Li et al. 2020) and
    Hyperband (Li et al. 2017) with random sampling. The scheduler's time unit is one minimum budget
    (``fidelity`` = epochs / min_epochs), so its rungs are exactly the epochs of ``rungs``; the default
    configuration (where every parameter has a default) is tried first, as the paper's BOHB did
    (``start_from_default``)."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandForBOHB, HyperBandScheduler
    from ray.tune.search import BasicVariantGenerator

    mode = tuning.objective.mode
    max_t = rungs[-1] // tuning.min_epochs
    first = [tuning.space.defaults()] if tuning.space.defaults() else None
    if tuning.scheduler == "bohb":
        try:
            from ray.tune.search.bohb import TuneBOHB
            TuneBOHB(metric="objective", mode=mode)  # raises when hpbandster/ConfigSpace are missing
        except (ImportError, AssertionError) as error:
            raise TuningError("scheduler bohb: Ray Tune's BOHB needs hpbandster and ConfigSpace "
                              f"(pip install -r requirements.txt), which do not import here ({error}); "
                              "asha and hyperband work without them") from None
        import numpy as np

        np.random.seed(tuning.seed)  # hpbandster's KDE sampling draws from numpy's global generator
        searcher = TuneBOHB(metric="objective", mode=mode, seed=tuning.seed, points_to_evaluate=first)
        scheduler = HyperBandForBOHB(time_attr="fidelity", max_t=max_t, reduction_factor=tuning.eta,
                                     stop_last_trials=True)
    else:
        searcher = BasicVariantGenerator(points_to_evaluate=first, random_state=tuning.seed)
        if tuning.scheduler == "asha":
            scheduler = AsyncHyperBandScheduler(time_attr="fidelity", grace_period=1, max_t=max_t,
                                                reduction_factor=tuning.eta, brackets=1)
        else:
            scheduler = HyperBandScheduler(time_attr="fidelity", max_t=max_t, reduction_factor=tuning.eta)
    return timer.instrument(searcher, "searcher", SEARCHER_METHODS), \
        timer.instrument(scheduler, "scheduler", SCHEDULER_METHODS)


def run_tuning(tuning: Tuning, argv: list[str], root: Path, rungs: list[int], *, seed: int, strategy: str,
               address: str | None = None, num_cpus: int | None = None, gpus_per_trial: float = 0.0,
               max_concurrent: int = 0) -> int:
    """Run the tuner; write ``tuning.json`` (settings, every evaluation, the incumbent, the overhead) and
    ``trajectories.jsonl`` into ``root``; print the incumbent. 1 when a trial failed."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise TuningError("--tune runs on Ray Tune, which is not installed: pip install 'ray[tune]'") from None
    from lightning_nas.tuning.trajectory import summarise_tuning

    root.mkdir(parents=True, exist_ok=True)
    method = f"{tuning.scheduler.upper() if tuning.scheduler != 'hyperband' else 'Hyperband'}-{strategy}"
    settings = {"tuning_file": tuning.path, "space": tuning.space.path, "scheduler": tuning.scheduler,
                "num_samples": tuning.num_samples, "min_epochs": tuning.min_epochs, "max_epochs": rungs[-1],
                "eta": tuning.eta, "rungs": rungs, "seed": tuning.seed, "fidelity": tuning.fidelity,
                "objective": vars(tuning.objective), "method": method, "recipe_seed": seed,
                "parameters": [vars(p) for p in tuning.space.parameters], "fixed": tuning.space.fixed}
    atomic_write_json(root / EXPERIMENT_RECORD, {"arguments": argv, "cwd": str(Path.cwd().resolve()), "seeds": [seed],
                                                 "grid": [], "tuning": settings, "ray_address": address,
                                                 "updated": _now()})
    Validation(tuning.objective, root)  # a missing table or column fails here, before any trial
    spec = {"root": str(root.resolve()), "cwd": str(Path.cwd().resolve()), "arguments": argv, "seed": seed,
            "rungs": rungs, "min_epochs": tuning.min_epochs, "objective": absolute_paths(tuning.objective),
            "threads": max(1, int(os.environ.get("LIGHTNING_NAS_TRIAL_THREADS", "1"))),
            "parameters": {p.name: vars(p) for p in tuning.space.parameters}, "fixed": tuning.space.fixed}
    timer = Timer()
    searcher, scheduler = searcher_and_scheduler(tuning, rungs, timer)
    print(f"[lightning_nas] tuning {root}: {method}, {tuning.num_samples} configurations of {tuning.space.path}, "
          f"search epochs {rungs} (eta {tuning.eta})", flush=True)
    started = start_ray(address, num_cpus)
    wall = time.monotonic()
    try:
        resources = {"cpu": 1, **({"gpu": gpus_per_trial} if gpus_per_trial else {})}
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(tune_trial, spec=spec), resources),
            param_space={p.name: p.domain() for p in tuning.space.parameters},
            tune_config=tune.TuneConfig(metric="objective", mode=tuning.objective.mode, search_alg=searcher,
                                        scheduler=scheduler, num_samples=tuning.num_samples, reuse_actors=False,
                                        max_concurrent_trials=max_concurrent or None,
                                        trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
            run_config=tune.RunConfig(name=time.strftime("%Y%m%d-%H%M%S"),
                                      storage_path=str((root / ".tune").resolve()), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)))
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    wall = time.monotonic() - wall
    errors = [str(r.error).strip().splitlines()[-1] for r in results if r.error is not None]
    overhead = {"searcher_seconds": timer.total("searcher"), "scheduler_seconds": timer.total("scheduler"),
                "by_method": {k: round(v, 6) for k, v in sorted(timer.seconds.items())},
                "calls": dict(sorted(timer.calls.items())), "tuner_wall_seconds": wall}
    summary = summarise_tuning(root, settings, overhead, method)
    incumbent = summary.get("incumbent")
    if incumbent:
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in incumbent["config"].items())
        print(f"[lightning_nas] incumbent {incumbent['trial']} after {incumbent['epochs']} epochs: {values}\n"
              f"  answer {incumbent['architecture']}: validation {incumbent['valid']:.4g}, test "
              f"{incumbent['test']}, test regret {incumbent['test_regret']}", flush=True)
    per_trial = summary["overhead"].get("per_trial_seconds")
    if per_trial is not None:
        print(f"[lightning_nas] overhead: searcher+scheduler {per_trial:.3f} s per trial against "
              f"{summary['overhead']['trial_seconds_per_trial']:.1f} s of training per trial", flush=True)
    for error in errors:
        print(f"  failed: {error}", flush=True)
    print(f"[lightning_nas] {len(results) - len(errors)} of {len(results)} trials ended without error; "
          f"records: {root / TUNING_RECORD}, {root / 'trajectories.jsonl'}", flush=True)
    return 1 if errors else 0


def absolute_paths(objective: Objective) -> dict[str, Any]:
    """The objective's files as absolute paths (Ray workers start in folders of their own); a table
    name that is no file here stays a name (a shipped table)."""
    values = dict(vars(objective))
    for key in ("table", "on_demand", "times"):
        if values[key] is not None and Path(values[key]).exists():
            values[key] = str(Path(values[key]).resolve())
    if values.get("benchmark"):
        init = dict(values["benchmark"].get("init_args") or {})
        for key in ("path", "table", "valid_table", "times"):
            if isinstance(init.get(key), str) and Path(init[key]).exists():
                init[key] = str(Path(init[key]).resolve())
        values["benchmark"] = {**values["benchmark"], "init_args": init}
    return values


def tune_trial(config: dict[str, Any], spec: dict[str, Any]) -> None:
    """One configuration in a Ray worker: run to each rung (fresh, then ``--resume``), evaluate the
    answer, report; a checkpoint at every report lets a paused trial continue where it stopped."""
    from ray import tune
    from ray.tune import Checkpoint

    from lightning_nas.tuning.settings import Parameter

    parameters = {name: Parameter(**{**p, "keys": tuple(p["keys"]), "choices": tuple(p["choices"])})
                  for name, p in spec["parameters"].items()}
    values = {name: parameters[name].value(v) for name, v in config.items() if name in parameters}
    trial_id = tune.get_context().get_trial_id()
    root = Path(spec["root"])
    run_dir = root / f"trial_{trial_id}"
    record_path = run_dir / TRIAL_TUNING
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {"trial": run_dir.name, "config": values, "evaluations": []}
    done = max((e["epochs"] for e in record["evaluations"]), default=0)
    overrides: list[str] = []
    for key, value in spec["fixed"].items():
        overrides += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    for name, value in values.items():
        for key in parameters[name].keys:
            overrides += [f"--{key}", repr(value) if isinstance(value, float) else str(value)]
    validation = Validation(Objective(**spec["objective"]), root)
    for epochs in spec["rungs"]:
        if epochs <= done:
            continue
        trial = {"name": run_dir.name, "seed": spec["seed"], "factors": values, "run_dir": str(run_dir),
                 "cwd": spec["cwd"], "threads": spec["threads"],
                 "arguments": [*spec["arguments"], *overrides, "--seed_everything", str(spec["seed"]),
                               "--run_dir", str(run_dir)],
                 "then": ["--stop_at_epoch", str(epochs)]}
        start = time.monotonic()
        outcome = execute_trial(trial)
        seconds = time.monotonic() - start
        if outcome["status"] != "finished":
            raise RuntimeError(f"{run_dir.name} at {epochs} epochs: {outcome['error']} (see {run_dir}/train.log)")
        result = evaluate_answer(run_dir, validation)
        evaluation = {"epochs": epochs, "search_seconds": seconds, "finished": time.time(), **result}
        record["evaluations"].append(evaluation)
        atomic_write_json(record_path, record)
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epochs.json").write_text(json.dumps({"epochs": epochs, "run_dir": str(run_dir)}))
            tune.report({"fidelity": epochs // spec["min_epochs"], "epochs": epochs, "objective": result["valid"],
                         "test": result["test"], "test_regret": result["test_regret"], "search_seconds": seconds},
                        checkpoint=Checkpoint.from_directory(folder))
