"""The tabulation recipe: parsing, validation, the protocol a table is bound to, and what to train."""
from __future__ import annotations

import inspect
import math
import statistics
from typing import Any, Literal, Optional, Sequence, Union

from jsonargparse import ArgumentParser

from lightning_nas.run.validation import RENAMED_KEYS, RecipeFileAction

from lightning_nas.tabulate.common import FIXED_TRAINER, PROTOCOL_KEYS, SPLITS, TabulateError


RECIPE_EXAMPLE = "--recipe recipes/tabulate_nb201_digits_729.yaml"


class TabulationRecipeFile(RecipeFileAction):
    sections = "space, architectures, seeds, model, data, ..."


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m lightning_nas.tabulate", exit_on_error=False,
                            description="Train architectures stand-alone and write a ground-truth table. "
                                        "Merge shard tables with: python -m lightning_nas.tabulate merge --out T SHARD...")
    parser.add_argument("--recipe", "-c", action=TabulationRecipeFile, help="A tabulation recipe (YAML).")
    parser.add_argument("--space", type=str, default="nb201", help="Registered search space.")
    parser.add_argument("--space_options", type=dict, default={}, help="Space keyword arguments (operations).")
    parser.add_argument("--architectures", type=Optional[Union[Literal["all"], int]], default=None,
                        help="Required (usually from the recipe): 'all' (enumerate the space) or N, a seeded uniform "
                             "sample of N distinct architectures. No default: all of NB201 would train for a day.")
    parser.add_argument("--sample_seed", type=int, default=0, help="Seed of the architecture sample.")
    parser.add_argument("--seeds", type=list[int], default=[0, 1],
                        help="Training seeds per architecture. A finished table can be extended with more seeds: "
                             "rerun with a longer list (existing per-seed values are kept as they are).")
    parser.add_argument("--split_seed", type=Optional[int], default=None,
                        help="Seed of the train/validation split, fixed for every training seed (None: the split "
                             "follows the training seed, as in tables made before this option).")
    parser.add_argument("--max_epochs", type=int, default=10)
    parser.add_argument("--evaluate", type=list[Literal["val", "test"]], default=["test"],
                        help="Splits evaluated after training: val (held-out training images) and/or test.")
    parser.add_argument("--model", type=dict, default={},
                        help="Standalone keyword arguments (network, lr, weight_decay, ...).")
    parser.add_argument("--data", type=dict, default={},
                        help="ImageDataModule keyword arguments, or {class_path, init_args} of another DataModule.")
    parser.add_argument("--trainer", type=dict, default={}, help="Further Trainer keyword arguments.")
    parser.add_argument("--out", type=Optional[str], default=None,
                        help="The table (CSV); sidecar: same name .json. Default runs/tabulate/<recipe name>.csv; "
                             "never inside the installed package (copy a finished table there deliberately).")
    parser.add_argument("--shard", type=Optional[str], default=None, help="i/k: positions p with p % k == i.")
    parser.add_argument("--limit", type=Optional[int], default=None,
                        help="Stop after this many new architectures (a deliberate, resumable stop).")
    parser.add_argument("--threads", type=Optional[int], default=1, help="torch threads (None: torch's default).")
    return parser


def parse_shard(text: Optional[str]) -> tuple[int, int]:
    if text is None:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise TabulateError(f"--shard must read i/k (e.g. 0/2), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise TabulateError(f"--shard {text}: need k >= 1 and 0 <= i < k")
    return index, count


def _check_keywords(factory: Any, options: dict[str, Any], key: str, reserved: Sequence[str] = ()) -> None:
    """Unknown or reserved keyword -> one line naming ``key.option`` and the valid ones."""
    parameters = [p for p in inspect.signature(factory).parameters if p not in ("self", "args", "kwargs")]
    for name in options:
        if name in reserved:
            raise TabulateError(f"{key}.{name} is set by the tabulation itself; remove it from the recipe")
        if name not in parameters:
            valid = ", ".join(p for p in parameters if p not in reserved)
            raise TabulateError(f"{key}.{name}: unknown option for {factory.__name__}; valid: {valid}")


#: The flat weight-optimiser keys of older recipes and table protocols -> their ``optimizer`` field
#: (from the one table of renamed keys; a tabulation recipe still accepts them, see strategy_options).
LEGACY_OPTIMIZER_KEYS = {old.rpartition(".")[2]: new.split()[0].rpartition(".")[2]
                         for old, new in RENAMED_KEYS.items() if new.startswith("model.init_args.optimizer.")}


def strategy_options(model: dict[str, Any]) -> dict[str, Any]:
    """The recipe's ``model`` section as keyword arguments of the strategy classes.

    Where the strategies take their weight-optimiser settings as one typed ``optimizer`` argument
    (``lightning_nas.strategies.settings.WeightOptimizer``), the flat keys of older recipes and table
    protocols (``lr``, ``weight_decay``, ``min_lr``, ...) are moved into it, so that a table's protocol
    (which records the recipe as written) keeps resuming; ``optimizer: {...}`` is accepted as well."""
    from lightning_nas.strategies.base import SearchStrategy

    options = dict(model)
    if "optimizer" not in inspect.signature(SearchStrategy.__init__).parameters:
        return options
    try:
        from lightning_nas.strategies.settings import WeightOptimizer
    except ImportError:
        return options
    given = options.pop("optimizer", None)
    if isinstance(given, WeightOptimizer):
        return {**options, "optimizer": given}
    settings = dict(given or {})
    for old, new in LEGACY_OPTIMIZER_KEYS.items():
        if old in options:
            settings[new] = options.pop(old)
    if settings:
        import dataclasses

        valid = [f.name for f in dataclasses.fields(WeightOptimizer)]
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise TabulateError(f"model.optimizer.{unknown[0]}: unknown option; valid: {', '.join(valid)}")
        options["optimizer"] = WeightOptimizer(**settings)
    return options


def data_module(data: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """``data``: ImageDataModule keyword arguments, or ``{class_path, init_args}`` naming another
    DataModule as in a training recipe (e.g. ``lightning_nas.data.PTBDataModule``)."""
    if "class_path" not in data:
        from lightning_nas.data.images import ImageDataModule

        return ImageDataModule, dict(data)
    import importlib

    extra = sorted(set(data) - {"class_path", "init_args"})
    if extra:
        raise TabulateError(f"data: with data.class_path the options go under data.init_args, not {', '.join(extra)}")
    module_name, _, name = str(data["class_path"]).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name), dict(data.get("init_args") or {})
    except (ImportError, AttributeError, ValueError):
        raise TabulateError(f"data.class_path: cannot import {data['class_path']!r}") from None


def validate(config: Any) -> None:
    from pytorch_lightning import Trainer

    from lightning_nas.strategies.base import SearchStrategy

    if not config.seeds or len(set(config.seeds)) != len(config.seeds):
        raise TabulateError(f"seeds must be a non-empty list of distinct integers, got {config.seeds}")
    if config.max_epochs < 1:
        raise TabulateError(f"max_epochs must be >= 1, got {config.max_epochs}")
    if not config.evaluate:
        raise TabulateError("evaluate must name at least one split (val, test)")
    if isinstance(config.architectures, int) and config.architectures < 1:
        raise TabulateError(f"architectures must be 'all' or a positive count, got {config.architectures}")
    if config.limit is not None and config.limit < 0:
        raise TabulateError(f"limit must be >= 0, got {config.limit}")
    _check_keywords(SearchStrategy.__init__, strategy_options(config.model), "model",
                    reserved=("space", "space_options", "num_classes", "in_channels", "seed"))
    data_class, data_options = data_module(config.data)
    _check_keywords(data_class.__init__, data_options, "data", reserved=("seed",))
    _check_keywords(Trainer.__init__, config.trainer, "trainer", reserved=("max_epochs", *FIXED_TRAINER))
    from lightning_nas.data.sources import IMAGE_SOURCES
    from lightning_nas.registry import UnknownNameError
    from lightning_nas.spaces import SPACES

    try:
        IMAGE_SOURCES.get(config.data.get("dataset", "digits"))
    except UnknownNameError as error:
        raise TabulateError(f"data.dataset: {error}") from None
    try:
        SPACES.get(config.space)(**config.space_options)
    except UnknownNameError as error:
        raise TabulateError(f"space: {error}") from None
    except (TypeError, ValueError) as error:
        raise TabulateError(f"space_options: {error}") from None
    if "val" in config.evaluate and config.data.get("val_split", 0.2) in (0, 0.0):
        raise TabulateError("evaluate: 'val' needs a validation split; set data.val_split > 0 or evaluate only test")
    if config.architectures is None:
        raise TabulateError(f"architectures is not set: a tabulation needs a recipe ({RECIPE_EXAMPLE}) or "
                            "--space and --architectures all|N (all of NB201 with the defaults trains for about a day)")


def protocol(config: Any) -> dict[str, Any]:
    """What determines the table's numbers (compared on resume and merge). ``split_seed`` enters only
    when set, so tables made before it existed (split following the training seed) still resume."""
    result = {key: config[key] for key in PROTOCOL_KEYS}
    if config.get("split_seed") is not None:
        result["split_seed"] = config.split_seed
    return result


def without_seeds(proto: dict[str, Any]) -> dict[str, Any]:
    """The protocol less its seed list: what must agree for a table to be extended with more seeds."""
    return {key: value for key, value in (proto or {}).items() if key != "seeds"}


def default_out(config: Any) -> str:
    """``runs/tabulate/<recipe name>.csv`` (the last recipe given), else ``runs/tabulate/<space>.csv``."""
    from pathlib import Path

    recipes = config.get("recipe") or []
    recipes = recipes if isinstance(recipes, list) else [recipes]
    name = next((Path(str(r)).stem for r in reversed(recipes) if r is not None), None) or str(config.space)
    name = name.removeprefix("tabulate_") or name
    return str(Path("runs") / "tabulate" / f"{name}.csv")


def check_outside_package(path: Any, option: str = "out") -> None:
    """Refuse to write into the installed ``lightning_nas`` package (site-packages, or the source tree
    of an editable install): a finished table is copied there deliberately, never written in place."""
    from pathlib import Path

    import lightning_nas

    package = Path(lightning_nas.__file__).resolve().parent
    target = Path(path).resolve()
    if target == package or package in target.parents:
        raise TabulateError(f"{option}: {path} is inside the installed package ({package}); write under runs/ "
                            "and copy the finished table and its .json sidecar into benchmarks/tables/ deliberately")


def table_space(config: Any) -> Any:
    """The space the recipe tabulates (``space`` with its ``space_options``)."""
    from lightning_nas.spaces import SPACES

    try:
        return SPACES.get(config.space)(**config.space_options)
    except TypeError as error:
        raise TabulateError(f"space_options: {error}") from None


def architectures(config: Any) -> list[Any]:
    """The table's architectures in table order: enumeration order, or sampling order."""
    from lightning_nas.seeding import generator

    space = table_space(config)
    if config.architectures == "all":
        try:
            return one_per_key(space, space.enumerate())
        except NotImplementedError as error:
            raise TabulateError(f"architectures: {error}; give a sample size instead") from None
    if config.architectures > space.size:
        raise TabulateError(f"architectures: {config.architectures} exceeds the space's {space.size} architectures; "
                            "use 'all'")
    return space.sample_many(config.architectures, generator(config.sample_seed, "tabulate"))


def one_per_key(space: Any, archs: Any) -> list[Any]:
    """The first architecture of each benchmark key (``space.key``), in enumeration order.

    A table holds functions, not decisions: on NAS-Bench-101 the 423 decided 4-vertex cells are 91
    graph hashes (Ying et al. 2019, Sec. 2.2: isomorphic and pruned-equal cells are one entry), and
    training each decided cell would spend most of the time on copies. Where the key is the text form
    (NB201, the DARTS spaces) this keeps every architecture."""
    kept: dict[str, Any] = {}
    for arch in archs:
        kept.setdefault(space.key(arch), arch)
    return list(kept.values())


def benchmark_keys(config: Any, archs: Sequence[Any]) -> Optional[list[str]]:
    """The benchmark key of each architecture where the space keys by something other than the text
    form (the NB101 graph hash); None where key and text agree (the table then has no ``key`` column,
    and tables made before the column existed keep their bytes)."""
    space = table_space(config)
    keys = [space.key(arch) for arch in archs]
    return None if all(k == str(a) for k, a in zip(keys, archs, strict=True)) else keys


def metric_names(config: Any) -> list[str]:
    return [f"{split}_{name}" for split in SPLITS if split in config.evaluate for name in ("accuracy", "loss")]


def header(metrics: Sequence[str], seeds: Sequence[int], keyed: bool = False) -> list[str]:
    """The table's columns; ``keyed`` adds ``key`` (the benchmark key, ``benchmark_keys``) at the end."""
    columns = ["position", "ArchitectureString"]
    for metric in metrics:
        columns += [f"{metric}_mean", f"{metric}_std"] + [f"{metric}_seed{s}" for s in seeds]
    return columns + ["epochs", "params"] + (["key"] if keyed else [])


def _fmt(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)


def make_row(position: int, arch: str, results: Sequence[dict[str, float]], metrics: Sequence[str],
             epochs: int, params: int, key: Optional[str] = None) -> list[str]:
    """Mean and std (sample std, ddof=1; 0 for one seed) of the per-seed values as written."""
    row = [str(position), arch]
    for metric in metrics:
        values = [float(_fmt(r[metric])) for r in results]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        row += [_fmt(statistics.fmean(values)), _fmt(std)] + [_fmt(v) for v in values]
    return row + [str(epochs), str(params)] + ([key] if key is not None else [])
