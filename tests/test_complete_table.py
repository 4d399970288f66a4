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
