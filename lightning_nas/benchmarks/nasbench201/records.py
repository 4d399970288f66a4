"""What one NAS-Bench-201 / NATS-Bench training run ("trial") holds, and the row this project keeps of it.

The structures, as the benchmark's own API defines them (Dong & Yang, ICLR 2020, Sec. 2.4 and the
``nas_201_api`` / ``nats_bench`` ``api_utils``; learned from there, read here without them):

- an *architecture record* (``ArchResults`` saved as a dictionary) per architecture and training
  budget: ``arch_index``, ``arch_str``, ``dataset_seed`` (data set -> the seeds that count) and
  ``all_results`` ((data set, seed) -> trial);
- a *trial* (``ResultsCount`` saved as a dictionary): ``name`` (data set), ``seed``, ``epochs`` (the
  budget: 12 or 200), per-epoch dictionaries ``train_acc1es``/``train_losses``/``train_times``
  (epoch -> value) and ``eval_acc1es``/``eval_losses``/``eval_times`` (``"<split>@<epoch>"`` ->
  value) for the splits in ``eval_names``, ``params`` (MB), ``flop`` (MFLOPs), ``latency`` (seconds,
  a list).

Splits, as the API names them (``get_metrics``): ``train``; ``x-valid``, ``x-test`` (the halves of the
original test set for CIFAR-100 and ImageNet16-120; for cifar10-valid, ``x-valid`` is the held-out half of
CIFAR-10's training set); ``ori-test`` (the original test set). A row keeps the metrics after the last
epoch of the budget (the API's default ``iepoch=None``) and the training time summed over all epochs
(the API's ``T-train@total``).
"""
from __future__ import annotations

import math
from typing import Any, Iterator

#: the data sets, as the benchmark names them (Sec. 2.3 of the paper)
DATASETS: tuple[str, ...] = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
#: the splits each data set is evaluated on (``get_metrics``' docstring in the authors' API)
SPLITS: dict[str, tuple[str, ...]] = {
    "cifar10-valid": ("train", "x-valid", "ori-test"),
    "cifar10": ("train", "ori-test"),
    "cifar100": ("train", "x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("train", "x-valid", "x-test", "ori-test"),
}
ALL_SPLITS: tuple[str, ...] = ("train", "x-valid", "x-test", "ori-test")
#: the budgets (total training epochs) of NAS-Bench-201 and NATS-Bench's topology space
BUDGETS: tuple[int, ...] = (12, 200)
#: one row's columns: accuracy (%) and loss after the last epoch per split, then costs
METRICS: tuple[str, ...] = tuple(f"{split}_{m}" for split in ALL_SPLITS for m in ("accuracy", "loss")) + (
    "train_time", "params", "flops", "latency")
#: the trial fields whose values are per-epoch dictionaries (what makes a trial big)
EPOCH_FIELDS = ("train_acc1es", "train_acc5es", "train_losses", "train_times", "eval_acc1es", "eval_losses",
                "eval_times")
EXTRACTED = "_lightning_nas_row"


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def is_trial(mapping: dict) -> bool:
    return "eval_acc1es" in mapping and "train_acc1es" in mapping and "epochs" in mapping


def is_arch_record(mapping: dict) -> bool:
    return "all_results" in mapping and "dataset_seed" in mapping and "arch_str" in mapping


def trial_metrics(trial: dict) -> tuple[int, tuple[float, ...]]:
    """(budget, the ``METRICS`` values) of one trial; a trial already reduced returns what it was reduced to."""
    if EXTRACTED in trial:
        return trial[EXTRACTED]
    epochs = int(trial["epochs"])
    last = epochs - 1
    values: list[float] = []
    evals, losses = trial.get("eval_acc1es") or {}, trial.get("eval_losses") or {}
    for split in ALL_SPLITS:
        if split == "train":
            values += [_number((trial.get("train_acc1es") or {}).get(last)),
                       _number((trial.get("train_losses") or {}).get(last))]
        else:
            key = f"{split}@{last}"
            values += [_number(evals.get(key)), _number(losses.get(key))]
    times = trial.get("train_times")
    train_time = float(sum(float(t) for t in times.values())) if isinstance(times, dict) and times else math.nan
    latency = trial.get("latency")
    latency = float(sum(float(v) for v in latency) / len(latency)) if latency else math.nan
    values += [train_time, _number(trial.get("params")), _number(trial.get("flop")), latency]
    return epochs, tuple(values)


def reduce_trial(trial: dict) -> None:
    """Replace a trial's contents, in place, by its row (what a streaming reader keeps)."""
    row = trial_metrics(trial)
    trial.clear()
    trial[EXTRACTED] = row


def arch_rows(record: dict) -> Iterator[tuple[str, str, int, int, tuple[float, ...]]]:
    """(architecture string, data set, seed, budget, metrics) of every trial that counts in one architecture
    record: the (data set, seed) pairs that ``dataset_seed`` lists, as the API's ``get_metrics`` uses them."""
    arch = str(record["arch_str"])
    counted = {(str(d), int(s)) for d, seeds in (record.get("dataset_seed") or {}).items() for s in seeds}
    for key, trial in (record.get("all_results") or {}).items():
        dataset, seed = str(key[0]), int(key[1])
        if (dataset, seed) in counted:
            epochs, metrics = trial_metrics(trial)
            yield arch, dataset, seed, epochs, metrics
