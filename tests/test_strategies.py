"""Search strategies: the pieces that are easy to get subtly wrong, each checked against a reference."""
from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import TINY_RECIPE, run_train
from lightning_nas.nn.nb201 import NB201Cell, NB201Network
from lightning_nas.registry import SPACES
from lightning_nas.spaces.nb201 import EDGES, OPERATIONS, NB201Architecture
from lightning_nas.strategies import DARTS, ENAS, GDAS, PCDARTS, STRATEGIES, FairNAS, RandomSampling, WeightOptimizer
from test_train_integration import PROBE, checkpoint_step, train

TINY = dict(network={"C": 4, "N": 1, "affine": False}, num_classes=3, in_channels=1)


def _batch(seed: int, n: int = 8, size: int = 4, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, size, size, generator=gen, dtype=dtype), torch.randint(3, (n,), generator=gen)


def _op_modules(net: nn.Module):
    """(cell index, edge index, op name, module) for every operation module of a super-net."""
    cells = [m for m in net.modules() if isinstance(m, NB201Cell)]
    for c, cell in enumerate(cells):
        for e, ops in enumerate(cell.edges):
            for name, module in ops.items():
                yield c, e, name, module


def _count_calls(net: nn.Module) -> tuple[Counter, list]:
    calls: Counter = Counter()
    handles = []
    for c, e, name, module in _op_modules(net):
        handles.append(module.register_forward_hook(lambda m, i, o, key=(c, e, name): calls.update([key])))
    return calls, handles


# ---------------------------------------------------------------------------------------------- DARTS
class _Relaxed(nn.Module):
    """Lets torch.func.functional_call run DARTS' relaxed forward with substituted weights."""

    def __init__(self, strategy: DARTS) -> None:
        super().__init__()
        self.strategy = strategy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.strategy.relaxed_forward(x)


def _smooth(module: nn.Module) -> None:
    """ReLU -> Softplus: grad_alpha L is discontinuous in w at ReLU kinks, which a finite difference
    straddles at random (an error ~1/eps that says nothing about the code); smooth activations make
    the comparison with exact second derivatives meaningful."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.Softplus())
        else:
            _smooth(child)


def test_darts_second_order_gradient_matches_exact_unrolled_autograd():
    torch.manual_seed(0)
    strategy = DARTS(unrolled=True, arch_init_std=0.5, **TINY).double()
    _smooth(strategy.supernet)
    xw, yw = _batch(1, dtype=torch.float64)
    xa, ya = _batch(2, dtype=torch.float64)
    xi = 0.5  # a large virtual step makes the Hessian term large enough to catch a wrong factor
    before = {k: v.detach().clone() for k, v in strategy.supernet.named_parameters()}

    approx = strategy.unrolled_gradient(xw, yw, xa, ya, xi=xi)[0]

    # weights untouched afterwards
    after = dict(strategy.supernet.named_parameters())
    assert all(torch.equal(v, after[k]) for k, v in before.items())

    # exact: grad_alpha L_val(w - xi * grad_w L_train(w, alpha), alpha), differentiating through grad_w
    wrapper = _Relaxed(strategy)
    names = [f"strategy.supernet.{n}" for n, _ in strategy.supernet.named_parameters()]
    weights = [p for _, p in strategy.supernet.named_parameters()]
    train_loss = F.cross_entropy(torch.func.functional_call(wrapper, dict(zip(names, weights, strict=True)), (xw,)), yw)
    grads = torch.autograd.grad(train_loss, weights, create_graph=True)
    virtual = {n: w - xi * g for n, w, g in zip(names, weights, grads, strict=True)}
    val_loss = F.cross_entropy(torch.func.functional_call(wrapper, virtual, (xa,)), ya)
    alpha = strategy.arch_weights["ops"]
    assert list(strategy.arch_weights) == ["ops"]  # DARTS creates no edge-normalisation group
    exact = torch.autograd.grad(val_loss, alpha)[0]

    # the two pitfalls: grad at w' without the Hessian term, and grad without the virtual step
    fixed = {n: v.detach() for n, v in virtual.items()}
    no_hessian = torch.autograd.grad(F.cross_entropy(torch.func.functional_call(wrapper, fixed, (xa,)), ya),
                                     alpha)[0]
    no_virtual_step = torch.autograd.grad(F.cross_entropy(strategy.relaxed_forward(xa), ya), alpha)[0]
    error = (approx - exact).norm()
    hessian_term = (exact - no_hessian).norm()  # a wrong division (by eps, or by 4 eps) errs by >= half of this
    assert hessian_term > 1e-3 * exact.norm()
    assert error < 0.02 * hessian_term, (error, hessian_term)
    assert error < 0.02 * (exact - no_virtual_step).norm()


def test_darts_first_order_step_updates_alpha_and_derives_argmax():
    strategy = DARTS(**TINY)
    alpha = strategy.arch_weights["ops"]
    assert alpha.shape == (len(EDGES), len(OPERATIONS))
    with torch.no_grad():
        alpha.zero_()
        alpha[:, OPERATIONS.index("nor_conv_3x3")] = 1.0
    assert strategy.derive_architecture().ops == ("nor_conv_3x3",) * 6
    weights = strategy.normalised_weights()
    assert set(weights) == {"ops"} and torch.allclose(weights["ops"].sum(-1), torch.ones(6))
    x, y = _batch(3)
    F.cross_entropy(strategy.relaxed_forward(x), y).backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0
    assert strategy.architecture_parameters() == [alpha]


def test_darts_alpha_columns_are_the_space_operations():
    """On an operation subset alpha has one column per operation of the space, in the space's order,
    and the derived cell reads its columns that way."""
    strategy = DARTS(space_options={"operations": ["nor_conv_3x3", "skip_connect"]}, **TINY)
    alpha = strategy.arch_weights["ops"]
    assert strategy.space.operations == ("skip_connect", "nor_conv_3x3") and alpha.shape == (6, 2)
    cell = NB201Architecture(("nor_conv_3x3", "skip_connect", "skip_connect", "nor_conv_3x3", "nor_conv_3x3",
                              "skip_connect"))
    with torch.no_grad():
        alpha.copy_(3.0 * strategy.space.one_hot(cell)["ops"])
    assert strategy.derive_architecture() == cell
    x, _ = _batch(3)
    strategy.eval()
    with torch.no_grad():  # a saturated relaxation computes (almost) the derived cell
        alpha.mul_(20.0)
        torch.testing.assert_close(strategy.relaxed_forward(x), strategy.supernet(x, cell), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- GDAS
def _gdas_step(strategy: GDAS, x: torch.Tensor, y: torch.Tensor):
    """relaxed_forward + backward; returns (logits, op calls, straight-through weights with their gradient)."""
    sample = strategy.sample_weights
    kept = {}

    def keep(*args, **kwargs):
        weights, active = sample(*args, **kwargs)
        weights["ops"].retain_grad()
        kept.update(weights=weights, active=active)
        return weights, active

    strategy.sample_weights = keep
    calls, handles = _count_calls(strategy.supernet)
    try:
        logits = strategy.relaxed_forward(x)
    finally:
        for h in handles:
            h.remove()
        del strategy.sample_weights
    F.cross_entropy(logits, y).backward()
    return logits, calls, kept


def _nodes_reaching_output(ops) -> set[int]:
    """Nodes whose value reaches the cell output through non-``none`` edges (backward reachability)."""
    useful = {3}
    for source in (2, 1, 0):
        if any(ops[e] != "none" and tgt in useful for e, (tgt, src) in enumerate(EDGES) if src == source):
            useful.add(source)
    return useful


@pytest.mark.parametrize("straight_through", ["reference", "sampled"])
def test_gdas_runs_exactly_one_operation_per_edge_and_alpha_gets_gradient(straight_through):
    strategy = GDAS(arch_init_std=1.0, straight_through=straight_through, **TINY)
    x, y = _batch(4)
    logits, calls, kept = _gdas_step(strategy, x, y)
    chosen = [strategy.space.operations[int(i)] for i in strategy.last_indices["ops"]]
    assert torch.equal(strategy.last_indices["ops"], kept["active"].indices["ops"].reshape(-1))
    assert kept["active"].passthrough == (straight_through == "reference")
    cells = len([m for m in strategy.supernet.modules() if isinstance(m, NB201Cell)])
    for c in range(cells):
        for e in range(6):
            per_edge = {name: n for (cc, ee, name), n in calls.items() if (cc, ee) == (c, e)}
            expected = {} if chosen[e] == "none" else {chosen[e]: 1}
            assert per_edge == expected, (c, e, per_edge, chosen[e])
    # straight-through: the forward value is that of the single sampled path
    arch = strategy.space.from_decisions([(int(i),) for i in strategy.last_indices["ops"]])
    assert arch.ops == tuple(chosen)
    assert torch.allclose(logits, strategy.supernet(x, arch), atol=1e-5)
    alpha = strategy.arch_weights["ops"]
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0
    # the estimator: "sampled" differentiates only the sampled weight of each edge; "reference" also
    # every other weight of the edge, added as a scalar (zero in value, a gradient path)
    grad = kept["weights"]["ops"].grad
    for e, index in enumerate(strategy.last_indices["ops"].tolist()):
        others = torch.cat([grad[e, :index], grad[e, index + 1:]])
        if straight_through == "sampled":
            assert not others.any(), (e, grad[e])
        elif EDGES[e][0] in _nodes_reaching_output(chosen) and chosen[e] != "none":
            assert others.abs().min() > 0 and torch.allclose(others, others[0].expand_as(others)), (e, grad[e])


def test_gdas_straight_through_modes_share_the_forward_and_reference_reaches_more_alpha():
    """Same seed, same Gumbel sample: the two estimators compute the identical forward value, and
    the reference one gives a gradient to every alpha of every edge whose node reaches the output."""
    x, y = _batch(4)
    runs = {}
    for mode in ("reference", "sampled"):
        torch.manual_seed(0)  # the same super-net weights
        strategy = GDAS(arch_init_std=1.0, straight_through=mode, seed=7, **TINY)
        logits, _, _ = _gdas_step(strategy, x, y)
        runs[mode] = (strategy, logits)
    (ref, ref_logits), (smp, smp_logits) = runs["reference"], runs["sampled"]
    assert torch.equal(ref.last_indices["ops"], smp.last_indices["ops"])
    assert torch.equal(ref_logits, smp_logits)
    chosen = [ref.space.operations[int(i)] for i in ref.last_indices["ops"]]
    live = _nodes_reaching_output(chosen)
    ref_grad, smp_grad = ref.arch_weights["ops"].grad, smp.arch_weights["ops"].grad
    for e, (target, _) in enumerate(EDGES):
        if target in live and chosen[e] != "none":
            assert (ref_grad[e] != 0).all(), (e, ref_grad[e])
    assert not torch.allclose(ref_grad, smp_grad)


def test_gdas_reference_gives_alpha_a_gradient_where_none_is_sampled():
    """In the authors' ``forward_gdas`` the sampled ``none`` is a Zero module whose zero output still
    receives the other weights of the edge as scalars: every alpha of an edge into the output node
    gets a gradient even where ``none`` is sampled. (Only the sampled weight then gets none.)"""
    strategy = GDAS(straight_through="reference", **TINY)
    with torch.no_grad():
        alpha = strategy.arch_weights["ops"]
        alpha.zero_()
        alpha[:, OPERATIONS.index("skip_connect")] = 10.0  # every edge skip ...
        alpha[5] = 0.0
        alpha[5, OPERATIONS.index("none")] = 10.0  # ... but 2 -> 3 none
    x, y = _batch(4)
    _, _, kept = _gdas_step(strategy, x, y)
    chosen = tuple(strategy.space.operations[int(i)] for i in strategy.last_indices["ops"])
    assert chosen == ("skip_connect",) * 5 + ("none",)
    grad = kept["weights"]["ops"].grad
    none = OPERATIONS.index("none")
    assert (torch.cat([grad[5, :none], grad[5, none + 1:]]) != 0).all(), grad[5]
    assert (strategy.arch_weights["ops"].grad[5] != 0).all(), strategy.arch_weights["ops"].grad


def test_gdas_temperature_anneals_linearly():
    strategy = GDAS(tau_max=10, tau_min=1, **TINY)

    class _Trainer:  # what ``tau`` reads from the Trainer
        max_epochs = 10
        current_epoch = 0

    strategy._trainer = _Trainer()
    taus = []
    for epoch in range(10):
        strategy._trainer.current_epoch = epoch
        taus.append(strategy.tau)
    assert taus == pytest.approx([10 - epoch for epoch in range(10)])
    with pytest.raises(ValueError, match="tau_min"):
        GDAS(tau_max=1, tau_min=2, **TINY)


# ---------------------------------------------------------------------------------------------- PC-DARTS
def test_pcdarts_sends_one_kth_of_the_channels_through_the_mixed_operation():
    strategy = PCDARTS(partial_channels=4, network={"C": 8, "N": 1, "affine": False}, num_classes=3, in_channels=1)
    seen: list[tuple[int, int]] = []
    cells = [m for m in strategy.supernet.modules() if isinstance(m, NB201Cell)]
    handles = [module.register_forward_pre_hook(lambda m, inputs, c=c: seen.append((c, inputs[0].shape[1])))
               for c, _, _, module in _op_modules(strategy.supernet)]
    x, y = _batch(5, size=8)
    F.cross_entropy(strategy.relaxed_forward(x), y).backward()
    for h in handles:
        h.remove()
    stage_channels = [8, 16, 32]  # one cell per stage (N=1)
    assert len(cells) == 3 and seen
    for c, channels in seen:  # the edges run one by one (the edges of one operation run as one kernel)
        assert channels == stage_channels[c] // 4, (c, channels)
    for c, _, _, module in _op_modules(strategy.supernet):  # every operation is built for C/K channels
        assert all(conv.in_channels == stage_channels[c] // 4 for conv in module.modules() if isinstance(conv, nn.Conv2d))
    assert set(strategy.arch_weights) == {"ops", "edges"}
    assert strategy.arch_weights["edges"].shape == (6,)
    assert strategy.arch_weights["ops"].grad.abs().sum() > 0 and strategy.arch_weights["edges"].grad.abs().sum() > 0
    # edge normalisation: softmax over the edges entering each node
    w = strategy.normalised_weights()["edges"].detach()
    assert torch.allclose(torch.stack([w[0:1].sum(), w[1:3].sum(), w[3:6].sum()]), torch.ones(3))
    # the partial super-net is smaller; the default network is untouched
    full = NB201Network(C=8, N=1, num_classes=3, in_channels=1, affine=False)
    assert sum(p.numel() for p in strategy.supernet.parameters()) < sum(p.numel() for p in full.parameters())
    assert sum(p.numel() for p in NB201Network(partial_channels=1).parameters()) == \
        sum(p.numel() for p in NB201Network().parameters())
    with pytest.raises(ValueError, match="partial_channels"):
        PCDARTS(partial_channels=3, network={"C": 8, "N": 1}, num_classes=3, in_channels=1)


@pytest.mark.parametrize("space", ["nb201", "nb1shot1"])
def test_pcdarts_scores_a_path_as_its_one_hot_relaxation_with_its_edge_weights(space):
    """Every group the architecture decides is its one-hot weights (NB1Shot1: its parents too, so two
    cells differing only in their inputs score differently); the edge-normalisation weights are the
    strategy's current ones."""
    options = dict(SPACES.get(space).tiny_options)
    net = {"nb201": {"C": 4, "N": 1, "affine": False}, "nb1shot1": {"C": 4, "num_stacks": 1, "cells_per_stack": 1}}
    torch.manual_seed(0)
    strategy = PCDARTS(space=space, space_options=options, network=net[space], partial_channels=2, num_classes=3,
                       in_channels=1, arch_init_std=1.0).eval()
    x, _ = _batch(7, size=8)
    gen = torch.Generator().manual_seed(0)
    scores = {}
    with torch.no_grad():
        for arch in strategy.space.sample_many(6, gen):
            one_hot = strategy.space.one_hot(arch)
            weights = {g.name: one_hot[g.name] if not g.edge_normalisation else strategy.normalised_weights()[g.name]
                       for g in strategy.groups}
            scores[arch] = strategy.architecture_forward(arch)(x)
            assert torch.equal(scores[arch], strategy.supernet.forward_weighted(x, weights))
    values = list(scores.values())
    assert any(not torch.equal(values[0], v) for v in values[1:])


# ---------------------------------------------------------------------------------------------- ENAS
def test_enas_reinforce_raises_the_probability_of_the_rewarded_architecture():
    strategy = ENAS(**TINY)
    assert strategy.baseline_decay == 0.99
    assert strategy.controller.choices == strategy.space.decisions
    # a reward the shared-head controller can express: the fraction of edges using nor_conv_3x3
    target = strategy.space.from_decisions([(OPERATIONS.index("nor_conv_3x3"),)] * 6)
    optimizer = torch.optim.Adam(strategy.controller.parameters(), lr=0.01)
    before = float(strategy.log_probability(target).detach())
    rewards, baselines = [], []
    for _ in range(40):
        stats = strategy.reinforce(lambda a: sum(p == q for p, q in zip(a.ops, target.ops, strict=True)) / 6, optimizer)
        rewards.append(stats["reward"])
        baselines.append(stats["baseline"])
    after = float(strategy.log_probability(target).detach())
    assert after > before + 3.0, (before, after)
    assert sum(rewards[-10:]) > sum(rewards[:10])
    assert strategy.derive_architecture() == target
    # the baseline is a moving average of the rewards: b <- 0.99 b + 0.01 R, starting at the first reward
    expected = rewards[0]
    for reward, baseline in zip(rewards, baselines, strict=True):
        expected = 0.99 * expected + 0.01 * reward
        assert baseline == pytest.approx(expected)
    assert float(strategy.baseline) == pytest.approx(baselines[-1]) and 0 < baselines[-1] <= 1


def test_enas_reinforce_without_an_optimizer_writes_the_policy_gradient():
    """``reinforce`` leaves the REINFORCE gradient -(R - b) grad log pi - w grad H in the controller."""
    strategy = ENAS(entropy_weight=0.0, **TINY)
    with torch.no_grad():
        strategy.baseline.fill_(0.25)
        strategy.baseline_ready.fill_(True)
    state = strategy.arch_generator.get_state()
    arch = strategy._draw(strategy.arch_generator)[0]
    strategy.arch_generator.set_state(state)  # reinforce draws the same architecture
    stats = strategy.reinforce(lambda a: 1.0)
    assert stats["reward"] == 1.0
    got = [p.grad.clone() for p in strategy.controller.parameters()]
    strategy.controller.zero_grad()
    (-(1.0 - 0.25) * strategy.log_probability(arch)).backward()
    for g, p in zip(got, strategy.controller.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


def test_enas_sampling_follows_the_seeded_generator_and_derivation_is_greedy():
    a, b = ENAS(**TINY), ENAS(**TINY)
    assert [a.sample_architecture() for _ in range(5)] == [b.sample_architecture() for _ in range(5)]
    with torch.no_grad():
        a.controller.head.bias.zero_()
        a.controller.head.weight.zero_()
        a.controller.head.bias[OPERATIONS.index("avg_pool_3x3")] = 5.0
    assert a.derive_architecture().ops == ("avg_pool_3x3",) * 6
    candidates = b.candidate_architectures(10, torch.Generator().manual_seed(0))
    assert len(candidates) == len(set(candidates)) == 10


# ---------------------------------------------------------------------------------------------- FairNAS
def test_fairnas_uses_every_operation_of_every_edge_exactly_once_per_step():
    strategy = FairNAS(**TINY)
    calls, handles = _count_calls(strategy.supernet)
    loss = strategy.training_step({"weights": _batch(6)}, 0)
    for h in handles:
        h.remove()
    archs = strategy.last_architectures
    assert len(archs) == strategy.paths == 5
    for c, choice in enumerate(strategy.space.decisions):  # over the decisions: each option once
        assert sorted(strategy.space.to_decisions(a)[c][0] for a in archs) == list(range(len(choice)))
    for e in range(6):
        assert sorted(a.ops[e] for a in archs) == sorted(OPERATIONS)
    expected = {(c, e, name): 1 for c, e, name, _ in _op_modules(strategy.supernet)}
    assert dict(calls) == expected
    loss.backward()
    # one accumulated update: an operation gets a gradient iff it is live in the model that used it
    for c, e, name, module in _op_modules(strategy.supernet):
        arch = next(a for a in archs if a.ops[e] == name)
        live = strategy.space.canonical(arch).ops[e] != "none"
        for p in module.parameters():
            assert (p.grad is not None and p.grad.abs().sum() > 0) == live, (c, e, name, live)


def test_random_sampling_is_a_seeded_draw():
    a, b, c = RandomSampling(seed=3, **TINY), RandomSampling(seed=3, **TINY), RandomSampling(seed=4, **TINY)
    assert a.derive_architecture() == b.derive_architecture()
    assert a.candidate_architectures(10, torch.Generator()) == [a.derive_architecture()]
    assert a.derive_architecture() != c.derive_architecture() or a.space.size == 1


def test_standalone_sets_drop_path_before_every_batch_so_a_mid_epoch_resume_keeps_it():
    """Lightning skips ``on_train_epoch_start`` when a run resumes mid-epoch; the probability is set
    from the epoch before each batch instead (DARTS A.2: linear to 0.2 over the epochs)."""
    space = SPACES.get("darts_cnn")()
    module = STRATEGIES.get("standalone")(space="darts_cnn", architecture=str(space.sample(torch.Generator().manual_seed(0))),
                                          network={"C": 4, "layers": 3, "drop_path_prob": 0.2}, num_classes=3,
                                          in_channels=1)

    class _Trainer:  # what the hook reads from the Trainer of a run resumed in epoch 2 of 4
        max_epochs = 4
        current_epoch = 2

    module._trainer = _Trainer()
    assert module.supernet.current_drop_path == 0.0
    module.on_train_batch_start(None, 7)
    assert module.supernet.current_drop_path == pytest.approx(0.1) == module.drop_path


def test_registry_names_every_strategy():
    for name in ("darts", "gdas", "pcdarts", "enas", "fairnas", "random_sampling"):
        assert issubclass(STRATEGIES.get(name), torch.nn.Module)


# ---------------------------------------------------------------------------------------------- end to end
# The promises, for every registered strategy (its ``test_options``, the tiny recipe, a few steps):
# the same seed gives bit-identical results, and a run killed with SIGKILL resumes to them.
STRATEGY_NAMES = STRATEGIES.names()
SHORT = ["--trainer.limit_train_batches", "6", "--checkpoint_every_n_steps", "2", "--ranking.num_architectures", "0",
         "--selection.num_architectures", "3", "--selection.top_k", "1", "--decoding.num_batches", "1", *PROBE]
KILL_BATCH = 5  # killed at the end of the 5th batch, after the checkpoint of the 4th


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def strategy_arguments(name: str) -> list[str]:
    """The tiny recipe's command line for the registered strategy ``name``, with its test options."""
    cls = STRATEGIES.get(name)
    options = cls.options_for_tests(SPACES.get(tiny_recipe_space())())
    arguments = ["--recipe", TINY_RECIPE, "--model", f"{cls.__module__}.{cls.__qualname__}", *SHORT]
    for key, value in options.items():
        arguments += [f"--model.init_args.{key}", _value(value)]
    if cls.uses_architecture_split:
        arguments += ["--data.init_args.arch_split", "0.3"]
    return arguments


def tiny_recipe_space() -> str:
    import yaml

    return (yaml.safe_load(TINY_RECIPE.read_text())["model"].get("init_args") or {}).get("space", "nb201")


class Finished:
    """What a finished run leaves: its last checkpoint, its metrics rows and its answer."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
        self.metrics = (run_dir / "metrics.csv").read_text().splitlines()
        self.selection = json.loads((run_dir / "selection.json").read_text())
        batches = run_dir / "probe" / "batches_rank0.jsonl"
        #: the global step after each batch (two optimiser steps per batch for bi-level strategies)
        self.steps = [json.loads(line)[0] for line in batches.read_text().splitlines()] if batches.is_file() else []

    def assert_same(self, other: "Finished") -> None:
        a, b = self.checkpoint, other.checkpoint
        assert (a["global_step"], a["epoch"]) == (b["global_step"], b["epoch"])
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for key in a["state_dict"]:
            assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
        assert torch.equal(a["architecture_generator"], b["architecture_generator"])
        assert_same_values(a["optimizer_states"], b["optimizer_states"], "optimizer states")
        assert a["lr_schedulers"] == b["lr_schedulers"]
        assert self.metrics == other.metrics
        assert self.selection == other.selection


def assert_same_values(a: object, b: object, what: str) -> None:
    """Bit-equal nested containers of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), what
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), what
        for key in a:
            assert_same_values(a[key], b[key], f"{what}/{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_values(x, y, f"{what}/{i}")
    else:
        assert a == b, what


_finished: dict[str, Finished] = {}


def finished(name: str, tmp_path_factory) -> Finished:
    """The uninterrupted run of ``name`` (one per test session, shared by the tests below); the probe
    records the global step after each batch."""
    if name not in _finished:
        run_dir = tmp_path_factory.mktemp(name) / "run"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LNAS_PROBE_BATCHES", "1")
            assert run_train(strategy_arguments(name) + ["--run_dir", run_dir], run_dir.parent) == 0
        _finished[name] = Finished(run_dir)
    return _finished[name]


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_strategy_trains_deterministically(name, tmp_path, tmp_path_factory):
    first = finished(name, tmp_path_factory)
    assert run_train(strategy_arguments(name) + ["--run_dir", tmp_path / "again"], tmp_path) == 0
    first.assert_same(Finished(tmp_path / "again"))
    cls = STRATEGIES.get(name)
    # the trained module, as a user reloads it: the recipe keys reached its typed settings
    trained = cls.load_from_checkpoint(first.run_dir / "checkpoints" / "last.ckpt")
    assert isinstance(trained.optim, WeightOptimizer)
    for key, value in cls.options_for_tests(trained.space).items():
        name_, _, field = key.partition(".")
        setting = trained.hparams[name_]
        assert (getattr(setting, field) if field else setting) == value, key
    if cls.trains:  # every parameter it learns moved, architecture parameters included
        initial = torch.load(first.run_dir / "probe" / "initial_rank0.pt", weights_only=False)
        learned = {id(p) for p in trained.architecture_parameters()}
        for key, parameter in trained.named_parameters():
            if id(parameter) in learned:
                assert not torch.equal(parameter.detach(), initial[key]), f"{key} never updated"
    selection = first.selection
    assert "derived" not in selection
    if cls.answer == "derived":  # the top-level answer is the strategy's own
        assert selection["architecture"] == str(trained.derive_architecture())
        assert selection["answer_source"].startswith(f"{cls.__name__}: ")
        assert "selection" not in selection["answer_source"]
    else:
        assert selection["answer_source"].startswith(f"{cls.__name__}: shared-weight selection")
        assert "shared_weight_selection" not in selection


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_killed_strategy_resumes_bit_identically(name, tmp_path, tmp_path_factory):
    """SIGKILL one step after a checkpoint, then ``--resume``: the same weights, optimiser states,
    generator, metrics rows and answer as the uninterrupted run."""
    if not STRATEGIES.get(name).trains:
        pytest.skip(f"{name} trains nothing: there is no step to be killed at")
    whole = finished(name, tmp_path_factory)
    kill_at = whole.steps[KILL_BATCH - 1]
    run_dir = tmp_path / "run"
    killed = train(strategy_arguments(name) + ["--run_dir", run_dir], LNAS_PROBE_KILL_AT_STEP=str(kill_at))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert 0 < checkpoint_step(run_dir) < kill_at  # the steps after the checkpoint were lost
    assert run_train(["--resume", run_dir], tmp_path) == 0
    whole.assert_same(Finished(run_dir))


def test_darts_selection_is_the_cell_its_alpha_favours(tmp_path):
    """A DARTS run whose alpha favours a known cell answers that cell (top level of selection.json),
    whatever the shared-weight selection beside it finds."""
    from pytorch_lightning import Trainer

    from callbacks import FinalSelection
    from lightning_nas.data import ImageDataModule

    cell = NB201Architecture.from_string(
        "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    torch.manual_seed(0)
    strategy = DARTS(network={"C": 4, "N": 1, "affine": False}, num_classes=10, in_channels=1)
    with torch.no_grad():  # a margin of 5 that three Adam steps of 3e-4 cannot undo
        strategy.arch_weights["ops"].copy_(5.0 * strategy.space.one_hot(cell)["ops"])
    selection = FinalSelection(num_architectures=4, num_batches=1, top_k=2)
    data = ImageDataModule(dataset="digits", data_dir=str(tmp_path), image_size=8, batch_size=32, val_split=0.2,
                           arch_split=0.3)
    trainer = Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, accelerator="cpu", devices=1,
                      callbacks=[selection], default_root_dir=str(tmp_path), logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    trainer.fit(strategy, datamodule=data)
    assert not torch.equal(strategy.arch_weights["ops"], 5.0 * strategy.space.one_hot(cell)["ops"])  # trained
    result = json.loads((tmp_path / "selection.json").read_text())
    assert result["architecture"] == str(cell) == str(strategy.derive_architecture())
    assert result["answer_source"] == "DARTS: decoded from its architecture weights"
    assert 0.0 <= result["supernet_val_accuracy"] <= 100.0
    shared = result["shared_weight_selection"]
    assert shared["candidates"] == 4 and len(shared["finalists"]) == 2
    assert "derived" not in result


def test_random_sampling_run_reports_its_draw(tiny_recipe, tmp_path):
    """The baseline answers with its draw; with ranking on (a grid beside search strategies) it has no
    shared weights to rank with, so no super-net numbers are made up for it."""
    args = ["--recipe", tiny_recipe, "--model", "lightning_nas.strategies.RandomSampling", "--trainer.max_epochs", "1",
            "--ranking.num_architectures", "5", "--run_dir", tmp_path / "r"]
    assert run_train(args, tmp_path) == 0
    assert not (tmp_path / "r" / "ranking").exists()
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert not any(column.startswith("ranking/") for column in header)
    selection = json.loads((tmp_path / "r" / "selection.json").read_text())
    expected = str(RandomSampling(seed=0, **TINY).derive_architecture())
    assert selection["architecture"] == expected
    assert selection["answer_source"] == "RandomSampling: its fixed architecture"
    assert "derived" not in selection and "shared_weight_selection" not in selection


def test_bilevel_strategy_without_arch_split_gets_the_papers_split_and_says_so(tiny_recipe, tmp_path, capsys):
    """Half of what the validation split leaves (tiny.yaml: val_split 0.2 -> arch_split 0.4), said in one
    line before the model is built (lightning_nas.run.requirements)."""
    args = ["--recipe", tiny_recipe, "--model", "lightning_nas.strategies.DARTS", "--run_dir", tmp_path / "x"]
    assert run_train(args, tmp_path) == 0
    assert "data.init_args.arch_split 0 -> 0.4 " in capsys.readouterr().out


def test_fixed_architecture_is_scored_alone_even_with_a_partial_table(tiny_recipe, tmp_path):
    """A stand-alone network holds one path: ranking and selection must not draw other cells from a
    table that covers only part of the space (they would have no operations to run)."""
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    args = ["--recipe", tiny_recipe, "--model", "lightning_nas.strategies.Standalone",
            "--model.init_args.architecture", arch, "--benchmark", "lightning_nas.benchmarks.TabulatedBenchmark",
            "--benchmark.init_args.path", "nb201_digits.csv", "--benchmark.init_args.metric", "test_accuracy_mean",
            "--run_dir", tmp_path / "run"]
    assert run_train(args, tmp_path) == 0
    result = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert result["architecture"] == arch
    assert result["answer_source"] == "Standalone: its fixed architecture"
    assert "shared_weight_selection" not in result  # no other cell was drawn to select among
    ranked = (tmp_path / "run" / "ranking" / "epoch_000.csv").read_text().strip().splitlines()
    assert len(ranked) == 2 and ranked[1].startswith(arch)
