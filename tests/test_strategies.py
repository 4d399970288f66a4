"""Search strategies: the pieces that are easy to get subtly wrong, each checked against a reference."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import run_train
from lightning_nas.nn.nb201 import NB201Cell, NB201Network
from lightning_nas.spaces.nb201 import OPERATIONS
from lightning_nas.strategies import DARTS, ENAS, GDAS, PCDARTS, STRATEGIES, FairNAS, RandomSampling

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
    train_loss = F.cross_entropy(torch.func.functional_call(wrapper, dict(zip(names, weights)), (xw,)), yw)
    grads = torch.autograd.grad(train_loss, weights, create_graph=True)
    virtual = {n: w - xi * g for n, w, g in zip(names, weights, grads)}
    val_loss = F.cross_entropy(torch.func.functional_call(wrapper, virtual, (xa,)), ya)
    exact = torch.autograd.grad(val_loss, strategy.alpha)[0]

    # the two pitfalls: grad at w' without the Hessian term, and grad without the virtual step
    fixed = {n: v.detach() for n, v in virtual.items()}
    no_hessian = torch.autograd.grad(F.cross_entropy(torch.func.functional_call(wrapper, fixed, (xa,)), ya),
                                     strategy.alpha)[0]
    no_virtual_step = torch.autograd.grad(F.cross_entropy(strategy.relaxed_forward(xa), ya), strategy.alpha)[0]
    error = (approx - exact).norm()
    hessian_term = (exact - no_hessian).norm()  # a wrong division (by eps, or by 4 eps) errs by >= half of this
    assert hessian_term > 1e-3 * exact.norm()
    assert error < 0.02 * hessian_term, (error, hessian_term)
    assert error < 0.02 * (exact - no_virtual_step).norm()


def test_darts_first_order_step_updates_alpha_and_derives_argmax():
    strategy = DARTS(**TINY)
    with torch.no_grad():
        strategy.alpha.zero_()
        strategy.alpha[:, OPERATIONS.index("nor_conv_3x3")] = 1.0
    assert strategy.derive_architecture().ops == ("nor_conv_3x3",) * 6
    x, y = _batch(3)
    F.cross_entropy(strategy.relaxed_forward(x), y).backward()
    assert strategy.alpha.grad is not None and strategy.alpha.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- GDAS
def test_gdas_runs_exactly_one_operation_per_edge_and_alpha_gets_gradient():
    strategy = GDAS(arch_init_std=1.0, **TINY)
    calls, handles = _count_calls(strategy.supernet)
    x, y = _batch(4)
    logits = strategy.relaxed_forward(x)
    for h in handles:
        h.remove()
    chosen = [strategy.space.operations[int(i)] for i in strategy.last_indices]
    cells = len([m for m in strategy.supernet.modules() if isinstance(m, NB201Cell)])
    for c in range(cells):
        for e in range(6):
            per_edge = {name: n for (cc, ee, name), n in calls.items() if (cc, ee) == (c, e)}
            expected = {} if chosen[e] == "none" else {chosen[e]: 1}
            assert per_edge == expected, (c, e, per_edge, chosen[e])
    # straight-through: the forward value is that of the single sampled path
    arch = strategy.space.decode(F.one_hot(strategy.last_indices, 5).float())
    assert torch.allclose(logits, strategy.supernet(x, arch), atol=1e-5)
    F.cross_entropy(logits, y).backward()
    assert strategy.alpha.grad is not None and strategy.alpha.grad.abs().sum() > 0


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
    for c, channels in seen:
        assert channels == stage_channels[c] // 4, (c, channels)
    assert strategy.alpha.grad.abs().sum() > 0 and strategy.beta.grad.abs().sum() > 0
    # edge normalisation: softmax over the edges entering each node
    w = strategy.edge_weights().detach()
    assert torch.allclose(torch.stack([w[0:1].sum(), w[1:3].sum(), w[3:6].sum()]), torch.ones(3))
    # the partial super-net is smaller; the default network is untouched
    full = NB201Network(C=8, N=1, num_classes=3, in_channels=1, affine=False)
    assert sum(p.numel() for p in strategy.supernet.parameters()) < sum(p.numel() for p in full.parameters())
    assert sum(p.numel() for p in NB201Network(partial_channels=1).parameters()) == \
        sum(p.numel() for p in NB201Network().parameters())
    with pytest.raises(ValueError, match="partial_channels"):
        PCDARTS(partial_channels=3, network={"C": 8, "N": 1}, num_classes=3, in_channels=1)


# ---------------------------------------------------------------------------------------------- ENAS
def test_enas_reinforce_raises_the_probability_of_the_rewarded_architecture():
    strategy = ENAS(**TINY)
    # a reward the shared-head controller can express: the fraction of edges using nor_conv_3x3
    target = strategy.space.decode(F.one_hot(torch.full((6,), OPERATIONS.index("nor_conv_3x3")), 5).float())
    optimizer = torch.optim.Adam(strategy.controller.parameters(), lr=0.01)
    before = float(strategy.log_probability(target).detach())
    rewards = []
    for _ in range(40):
        stats = strategy.controller_step(lambda a: sum(p == q for p, q in zip(a.ops, target.ops)) / 6, optimizer)
        rewards.append(stats["reward"])
    after = float(strategy.log_probability(target).detach())
    assert after > before + 3.0, (before, after)
    assert sum(rewards[-10:]) > sum(rewards[:10])
    assert strategy.derive_architecture() == target
    # the baseline is a moving average of the rewards
    assert 0 < float(strategy.baseline) <= 1


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
    assert len(archs) == 5
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


def test_registry_names_every_strategy():
    for name in ("darts", "gdas", "pcdarts", "enas", "fairnas", "random_sampling"):
        assert issubclass(STRATEGIES.get(name), torch.nn.Module)


# ---------------------------------------------------------------------------------------------- end to end
SHORT = ["--trainer.limit_train_batches", "3", "--checkpoint_every_n_steps", "3", "--ranking.num_architectures", "0",
         "--selection.num_architectures", "3", "--selection.top_k", "1", "--decoding.num_batches", "1"]
BILEVEL = ["--data.init_args.arch_split", "0.3"]
CASES = {
    "DARTS": BILEVEL,
    "DARTS-unrolled": BILEVEL + ["--model.init_args.unrolled", "true"],
    "GDAS": BILEVEL,
    "PCDARTS": BILEVEL + ["--model.init_args.arch_warmup_epochs", "0"],
    "ENAS": BILEVEL,
    "FairNAS": [],
}


@pytest.mark.parametrize("case", list(CASES))
def test_strategy_trains_deterministically(case, tiny_recipe, tmp_path):
    name = case.split("-")[0]
    args = ["--recipe", tiny_recipe, "--model", f"lightning_nas.strategies.{name}", *SHORT, *CASES[case]]
    states = []
    for run in ("a", "b"):
        assert run_train(args + ["--run_dir", tmp_path / run], tmp_path) == 0
        states.append(torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False))
    a, b = states
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert torch.equal(a["architecture_generator"], b["architecture_generator"])
    if name in ("DARTS", "GDAS", "PCDARTS"):
        initial = STRATEGIES.get(name.lower())(network={"C": 4, "N": 1, "affine": False}).alpha
        assert not torch.equal(a["state_dict"]["alpha"], initial), "alpha was never updated"
        assert (tmp_path / "a" / "decoding.csv").read_text().count("\n") == 2  # header + one epoch
    if name == "ENAS":
        assert (tmp_path / "a" / "decoding.csv").is_file()
    selection = json.loads((tmp_path / "a" / "selection.json").read_text())
    assert selection == json.loads((tmp_path / "b" / "selection.json").read_text())


def test_random_sampling_run_reports_its_draw(tiny_recipe, tmp_path):
    args = ["--recipe", tiny_recipe, "--model", "lightning_nas.strategies.RandomSampling", "--trainer.max_epochs", "0",
            "--ranking.num_architectures", "0", "--run_dir", tmp_path / "r"]
    assert run_train(args, tmp_path) == 0
    selection = json.loads((tmp_path / "r" / "selection.json").read_text())
    expected = str(RandomSampling(seed=0, **TINY).derive_architecture())
    assert selection["architecture"] == selection["derived"]["architecture"] == expected


def test_bilevel_strategy_without_arch_split_is_a_one_line_error(tiny_recipe, tmp_path, capsys):
    args = ["--recipe", tiny_recipe, "--model", "lightning_nas.strategies.DARTS", "--run_dir", tmp_path / "x"]
    assert run_train(args, tmp_path) == 2
    assert "data.arch_split" in capsys.readouterr().err


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
    assert result["architecture"] == arch and result["candidates"] == 1
    assert result["candidate_source"] == "the strategy's fixed architecture"
    ranked = (tmp_path / "run" / "ranking" / "epoch_000.csv").read_text().strip().splitlines()
    assert len(ranked) == 2 and ranked[1].startswith(arch)
