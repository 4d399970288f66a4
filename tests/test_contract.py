"""The space/strategy contract, over the registries: every registered space obeys the space and
network invariants, and every registered strategy runs on every registered space or declares the
pair unsupported in one line. A space or strategy is covered here the moment it is registered."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from pytorch_lightning import Trainer
from scipy import stats
from torch.utils.data import DataLoader

import lightning_nas.strategies  # noqa: F401  (registers the strategies)
from lightning_nas.errors import UnsupportedCombinationError
from lightning_nas.registry import NETWORKS, SPACES, STRATEGIES
from lightning_nas.strategies import ENAS, FairNAS, FixedArchitecture, SearchStrategy

NUM_CLASSES = 5
SPACE_NAMES = SPACES.names()
STRATEGY_NAMES = [name for name in STRATEGIES.names() if not issubclass(STRATEGIES.get(name), FixedArchitecture)]


def tiny_space(name: str):
    return SPACES.get(name)(**SPACES.get(name).tiny_options)


def tiny_network(name: str, space, **extra):
    network = NETWORKS.get(name)
    return network(space=space, num_classes=NUM_CLASSES, in_channels=1, **network.tiny_options, **extra)


def example_batch(name: str, seed: int, batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if NETWORKS.get(name).input_kind == "tokens":
        x = torch.randint(NUM_CLASSES, (batch, 6), generator=gen)
        return x, torch.randint(NUM_CLASSES, (batch * 6,), generator=gen)
    return torch.randn(batch, 1, 8, 8, generator=gen), torch.randint(NUM_CLASSES, (batch,), generator=gen)


# ------------------------------------------------------------------------------------------ spaces
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_every_space_has_a_network_of_the_same_name(name):
    assert name in NETWORKS


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_text_and_decisions_round_trip(name):
    space = SPACES.get(name)()  # the full space, sampled
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        arch = space.sample(gen)
        assert space.parse(str(arch)) == arch
        picks = space.to_decisions(arch)
        assert len(picks) == len(space.decisions)
        assert all(len(p) == c.pick for p, c in zip(picks, space.decisions, strict=True))
        assert space.from_decisions(picks) == arch
        assert isinstance(space.key(arch), str)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_tiny_space_enumerates_its_size_and_samples_uniformly(name):
    space = tiny_space(name)
    archs = list(space.enumerate())
    assert len(archs) == len(set(archs)) == space.size
    assert space.size <= 1000, "a space's tiny_options should give a small, enumerable space"
    gen = torch.Generator().manual_seed(1)
    draws = 30 * space.size
    counts = Counter(space.sample(gen) for _ in range(draws))
    assert set(counts) <= set(archs)
    observed = [counts[a] for a in archs]
    # chi-square goodness of fit against the uniform distribution over the space
    assert stats.chisquare(observed).pvalue > 1e-3


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_one_hot_decodes_to_its_architecture(name):
    space = SPACES.get(name)()
    if not space.relaxation:
        pytest.skip(f"{name} states no relaxation")
    gen = torch.Generator().manual_seed(2)
    for _ in range(20):
        arch = space.sample(gen)
        weights = space.one_hot(arch)
        assert set(weights) == {g.name for g in space.relaxation}
        assert all(tuple(weights[g.name].shape) == g.shape for g in space.relaxation)
        assert space.decode(weights) == arch


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_path_equals_standalone_and_one_hot_mixture(name):
    space = tiny_space(name)
    torch.manual_seed(0)
    net = tiny_network(name, space).eval()
    x, _ = example_batch(name, 0)
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        arch = space.sample(gen)
        with torch.no_grad():
            path = net(x, arch)
            assert torch.equal(path, net.standalone(arch).eval()(x))
            if space.relaxation:
                assert torch.equal(path, net.forward_weighted(x, space.one_hot(arch)))


# ------------------------------------------------------------------------------------------ strategies
def build(strategy: str, space: str, **options) -> SearchStrategy:
    network = NETWORKS.get(space)
    return STRATEGIES.get(strategy)(space=space, space_options=SPACES.get(space).tiny_options,
                                     network=dict(network.tiny_options), num_classes=NUM_CLASSES, in_channels=1,
                                     **options)


def build_for_tests(strategy: str, space: str) -> SearchStrategy:
    """``build`` with the strategy's own test options (what one step needs to train everything)."""
    return build(strategy, space, **STRATEGIES.get(strategy).test_arguments(tiny_space(space)))


def one_step(strategy: SearchStrategy, space: str, precision: str = "32-true") -> None:
    batch = {"weights": example_batch(space, 10), "arch": example_batch(space, 11)}
    trainer = Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      precision=precision)
    trainer.fit(strategy, train_dataloaders=DataLoader([batch], batch_size=None))
    assert trainer.global_step >= 1


@pytest.mark.parametrize("space", SPACE_NAMES)
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_every_strategy_runs_on_every_space_or_says_why_not(strategy, space):
    torch.manual_seed(0)
    try:
        module = build_for_tests(strategy, space)
    except UnsupportedCombinationError as error:
        message = str(error)
        assert "\n" not in message and space in message and type(error).__name__
        assert STRATEGIES.get(strategy).__name__ in message
        return
    tensors = lambda: {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}  # noqa: E731
    before = {k: v.clone() for k, v in tensors().items()}
    one_step(module, space)
    changed = [k for k, v in tensors().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed, "one training step changed no weight"
    derived = module.derive_architecture()
    if module.answer == "derived":
        assert derived is not None
    if derived is not None:
        assert module.space.parse(str(derived)) == derived
    candidates = module.candidate_architectures(4, torch.Generator().manual_seed(0))
    assert candidates and all(module.space.parse(str(a)) == a for a in candidates)
    for arch in candidates[:2]:
        x, _ = example_batch(space, 12)
        assert torch.isfinite(module.architecture_forward(arch)(x)).all()


@pytest.mark.parametrize("space", SPACE_NAMES)
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_every_strategy_trains_in_bf16_mixed_precision(strategy, space):
    """``--trainer.precision bf16-mixed`` works for every strategy, manual-optimisation ones included."""
    torch.manual_seed(0)
    try:
        module = build_for_tests(strategy, space)
    except UnsupportedCombinationError:
        pytest.skip("pair declared unsupported")
    before = {k: v.clone() for k, v in module.named_parameters()}
    one_step(module, space, precision="bf16-mixed")
    after = dict(module.named_parameters())
    assert all(v.dtype == torch.float32 for v in after.values())  # master weights stay fp32
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(v, before[k]) for k, v in after.items())


def test_the_nb201_and_rnn_spaces_run_every_strategy():
    """The minimum the contract guarantees today: no strategy refuses NB201, and only strategies that
    need partial channels (convolutional edges) refuse the recurrent space."""
    for strategy in STRATEGY_NAMES:
        build(strategy, "nb201")
        if "partial_channels" in STRATEGIES.get(strategy).requires:
            with pytest.raises(UnsupportedCombinationError, match="partial-channel"):
                build(strategy, "darts_rnn")
        else:
            build(strategy, "darts_rnn")


# ------------------------------------------------------------------------------------------ policies on RNN cells
def test_fairnas_is_strictly_fair_over_every_decision_of_the_rnn_space():
    module: FairNAS = build("fairnas", "darts_rnn")
    space = module.space
    for _ in range(3):
        archs = module.fair_architectures()
        assert len(archs) == module.paths == 4
        for c, choice in enumerate(space.decisions):
            used = Counter(i for arch in archs for i in space.to_decisions(arch)[c])
            assert sorted(used) == list(range(len(choice)))
            assert set(used.values()) == {module.paths * choice.pick // len(choice)}, choice.label
    # node 2 takes node 1 as its input in some path: the weights of that connection are trained
    assert any(arch.nodes[1][1] == 1 for arch in archs)


def test_enas_controller_reaches_every_architecture_of_the_rnn_space():
    module: ENAS = build("enas", "darts_rnn")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        seen = {module._draw(gen)[0] for _ in range(1500)}
    assert seen == set(module.space.enumerate()) and len(seen) == 32


def test_enas_log_probability_of_all_architectures_sums_to_one():
    module: ENAS = build("enas", "darts_rnn")
    with torch.no_grad():
        total = sum(math.exp(float(module.log_probability(a))) for a in module.space.enumerate())
    assert total == pytest.approx(1.0, abs=1e-5)


def test_standalone_channels_last_trains_and_matches_the_default_layout():
    """``channels_last`` changes only the memory layout: one step from the same initial weights gives
    the same weights up to rounding."""
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        module = STRATEGIES.get("standalone")(architecture=arch, channels_last=channels_last, space="nb201",
                                              network={"C": 4, "N": 1}, num_classes=NUM_CLASSES, in_channels=1)
        one_step(module, "nb201")
        conv = next(m.weight for m in module.supernet.modules()
                    if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1 and m.kernel_size == (3, 3))
        assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
        results.append({k: v.detach().clone() for k, v in module.supernet.state_dict().items()})
    for key, value in results[0].items():
        assert torch.allclose(value.float(), results[1][key].float(), atol=1e-5), key


def test_fairnas_keeps_strict_fairness_over_operations_where_full_fairness_is_too_costly():
    """On the full 8-node RNN space strict fairness over every decision would need 840 paths per
    step: ``fair_over: auto`` keeps it over the activations (4 paths, each activation of every node
    exactly once) and draws inputs uniformly; ``fair_over: all`` is refused in one line."""
    module: FairNAS = STRATEGIES.get("fairnas")(space="darts_rnn", network=dict(NETWORKS.get("darts_rnn").tiny_options),
                                                num_classes=NUM_CLASSES, in_channels=1)
    assert module.paths == 4
    archs = module.fair_architectures()
    for c, choice in enumerate(module.space.decisions):
        used = Counter(module.space.to_decisions(a)[c][0] for a in archs)
        if choice.kind == "operation":
            assert sorted(used.values()) == [1, 1, 1, 1], choice.label
    with pytest.raises(UnsupportedCombinationError, match="840 paths"):
        STRATEGIES.get("fairnas")(space="darts_rnn", fair_over="all", network=dict(NETWORKS.get("darts_rnn").tiny_options),
                                  num_classes=NUM_CLASSES, in_channels=1)
