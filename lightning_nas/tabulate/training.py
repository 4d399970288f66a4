"""Training one architecture stand-alone with one seed, through the same Lightning parts as every run."""
from __future__ import annotations

import logging
import warnings
from typing import Any

from lightning_nas.tabulate.common import FIXED_TRAINER, TabulateError
from lightning_nas.tabulate.options import data_module, strategy_options


def _quiet() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def train_one(config: Any, arch: str, seed: int) -> tuple[dict[str, float], int]:
    """Train ``arch`` stand-alone with ``seed``; metrics of the evaluated splits and the parameter count."""
    from pytorch_lightning import Trainer, seed_everything

    from lightning_nas.strategies.standalone import Standalone

    seed_everything(seed, verbose=False)
    data_class, data_options = data_module(config.data)
    split_seed = config.get("split_seed") if hasattr(config, "get") else None
    if split_seed is None:
        data = data_class(**data_options, seed=seed)
    else:
        # the split is drawn once from split_seed (DataModules cache it on first access); batches and
        # augmentation then follow the training seed
        data = data_class(**data_options, seed=split_seed)
        if not hasattr(data, "splits"):
            raise TabulateError(f"split_seed: {data_class.__name__} has no train/validation split to fix; "
                                "remove split_seed")
        data.splits  # noqa: B018
        data.seed = seed
    model = Standalone(arch, space=config.space, space_options=config.space_options or None,
                       num_classes=data.num_classes, in_channels=data.in_channels, seed=seed,
                       **strategy_options(config.model))
    trainer_options = {"accelerator": "cpu", "devices": 1, **config.trainer, **FIXED_TRAINER}
    trainer = Trainer(max_epochs=config.max_epochs, limit_val_batches=0, **trainer_options)
    trainer.fit(model, datamodule=data)
    if trainer.interrupted or trainer.current_epoch != config.max_epochs:
        # Lightning ends fit quietly on SIGTERM/interrupts; such a half-trained net must never become a row
        raise TabulateError(f"training of {arch} (seed {seed}) stopped at epoch {trainer.current_epoch} "
                            f"of {config.max_epochs}; no row written")
    results: dict[str, float] = {}
    for split in config.evaluate:
        evaluator = Trainer(**trainer_options)
        run = evaluator.validate if split == "val" else evaluator.test
        logged = run(model, datamodule=data, verbose=False)[0]
        results[f"{split}_accuracy"] = float(logged[f"{split}/accuracy"])
        results[f"{split}_loss"] = float(logged[f"{split}/loss"])
    params = sum(p.numel() for p in model.supernet.parameters())
    return results, params
