"""The shipped complete ground truth of an NB201 sub-space (``nb201_digits_729.csv``, issue 10): every
cell of the sub-space has a value, so every strategy's answer on that sub-space has a ground truth -
the random baseline's draw, every decoded DARTS-family cell, every controller sample. Iterates the
strategy registry, so a new strategy is covered when it is registered."""
from __future__ import annotations

import pytest
import torch

import lightning_nas.strategies  # noqa: F401  (registers the strategies)
from lightning_nas.benchmarks import TabulatedBenchmark
from lightning_nas.benchmarks.tabulated import TABLES
from lightning_nas.errors import UnsupportedCombinationError
from lightning_nas.registry import SPACES, STRATEGIES
from lightning_nas.strategies import FixedArchitecture

TABLE = "nb201_digits_729.csv"
OPERATIONS = ["skip_connect", "nor_conv_3x3", "avg_pool_3x3"]  # the recipe's space_options.operations
STRATEGY_NAMES = [name for name in STRATEGIES.names() if not issubclass(STRATEGIES.get(name), FixedArchitecture)]

pytestmark = pytest.mark.skipif(not (TABLES / TABLE).is_file(), reason=f"{TABLE} is not shipped")


@pytest.fixture(scope="module")
def table() -> TabulatedBenchmark:
    return TabulatedBenchmark(TABLE)


def test_every_cell_of_the_sub_space_has_a_value(table):
    space = SPACES.get("nb201")(operations=OPERATIONS)
    keys = {space.key(arch) for arch in space.enumerate()}
    assert len(keys) == space.size == 3 ** 6 == len(table)
    assert all(table.query(key) is not None for key in keys)


def test_protocol_and_noise_ceiling_of_the_table(table):
    """A split fixed apart from the training seed, and the reliability issue 10 aims for."""
    side = table.sidecar
    assert side["status"] == "complete" and side["protocol"]["split_seed"] == 0
    seeds = side["seeds"]
    assert len(seeds) >= 4 and len(table.seed_values(next(iter(table.table())))) == len(seeds)
    ceiling = side["noise_ceiling"]["test_accuracy"]
    assert ceiling["split_half"]["spearman_brown"] >= 0.9
    assert ceiling["split_half"]["top_quartile_agreement"] > 0.25  # chance level


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_strategys_answer_has_a_ground_truth(name, table):
    """The answer a strategy would give (decoded weights, controller samples, uniform draws),
    with its architecture parameters perturbed away from their initial values."""
    torch.manual_seed(0)
    try:
        strategy = STRATEGIES.get(name)(space="nb201", space_options={"operations": OPERATIONS},
                                        network={"C": 4, "N": 1}, num_classes=10, in_channels=1)
    except UnsupportedCombinationError:
        pytest.skip(f"{name} does not run on nb201")
    with torch.no_grad():
        for parameter in strategy.architecture_parameters():
            parameter.normal_(0.0, 1.0)
    answers = [strategy.derive_architecture()] if strategy.answer == "derived" else []
    answers += strategy.candidate_architectures(50, torch.Generator().manual_seed(1))
    answers = [a for a in answers if a is not None]
    assert answers
    for arch in answers:
        assert table.query(strategy.space.key(arch)) is not None, (name, str(arch))


def test_the_documented_command_regenerates_shipped_cells(table, tmp_path):
    """Issue 19: the shipped table is made at a clean commit (its sidecar says which), and the recipe's
    documented command retrains its first cells to the shipped per-seed values bit for bit - on the
    torch build, CPU kind and thread count the sidecar records (elsewhere the last bits may differ;
    docs/experiments.md, "What bit-identical covers")."""
    import csv
    import subprocess
    import sys

    from lightning_nas.results.rerun import comparable
    from lightning_nas.run_record import cpu_kind

    side = table.sidecar
    assert side["git"]["dirty"] is False, "the shipped table must be made at a clean commit"
    shipped = {"environment": {"torch": side["versions"]["torch"], "cpu": side.get("cpu"), "threads": side["threads"]}}
    here = {"environment": {"torch": torch.__version__, "cpu": cpu_kind(), "threads": side["threads"]}}
    ok, why = comparable(shipped, here)
    if not ok:
        pytest.skip(f"not comparable here: {why}")
    root = TABLES.parents[2]
    out = tmp_path / "cells.csv"
    subprocess.run([sys.executable, "-m", "lightning_nas.tabulate", "--recipe", "recipes/tabulate_nb201_digits_729.yaml",
                    "--seeds", "[0, 1]", "--limit", "2", "--out", str(out)],
                   cwd=root, check=True, capture_output=True)
    with out.open(newline="") as handle:
        regenerated = list(csv.DictReader(handle))
    with (TABLES / TABLE).open(newline="") as handle:
        rows = {r["ArchitectureString"]: r for r in csv.DictReader(handle)}
    assert len(regenerated) == 2
    for row in regenerated:
        for column in ("test_accuracy_seed0", "test_accuracy_seed1", "test_loss_seed0", "test_loss_seed1"):
            assert row[column] == rows[row["ArchitectureString"]][column], (row["ArchitectureString"], column)
