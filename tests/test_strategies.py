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
from lightning_nas.spaces.nb201 import EDGES, OPERATIONS, NB201Architecture
from lightning_nas.strategies import (DARTS, ENAS, GDAS, PCDARTS, STRATEGIES, ArchitectureOptimizer, FairNAS,
                                      RandomSampling, WeightOptimizer)

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
    for c, channels in seen:
        assert channels == stage_channels[c] // 4, (c, channels)
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
        stats = strategy.reinforce(lambda a: sum(p == q for p, q in zip(a.ops, target.ops)) / 6, optimizer)
        rewards.append(stats["reward"])
        baselines.append(stats["baseline"])
    after = float(strategy.log_probability(target).detach())
    assert after > before + 3.0, (before, after)
    assert sum(rewards[-10:]) > sum(rewards[:10])
    assert strategy.derive_architecture() == target
    # the baseline is a moving average of the rewards: b <- 0.99 b + 0.01 R, starting at the first reward
    expected = rewards[0]
    for reward, baseline in zip(rewards, baselines):
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
    for g, p in zip(got, strategy.controller.parameters()):
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
    "GDAS": BILEVEL + ["--model.init_args.straight_through", "sampled"],
    "PCDARTS": BILEVEL + ["--model.init_args.architecture_optimizer.warmup_epochs", "0"],
    "ENAS": BILEVEL + ["--model.init_args.architecture_optimizer.lr", "0.01"],
    "FairNAS": ["--model.init_args.optimizer.lr", "0.1", "--model.init_args.optimizer.nesterov", "false"],
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
    # the trained module, as a user reloads it; the recipe keys reached its typed settings
    trained = STRATEGIES.get(name.lower()).load_from_checkpoint(tmp_path / "a" / "checkpoints" / "last.ckpt")
    assert isinstance(trained.optim, WeightOptimizer)
    if case == "PCDARTS":
        assert trained.arch_optim.warmup_epochs == 0
    if case == "GDAS":
        assert trained.straight_through == "sampled"
    if case == "ENAS":
        assert isinstance(trained.arch_optim, ArchitectureOptimizer) and trained.arch_optim.lr == 0.01
    if case == "FairNAS":
        assert trained.optim.lr == 0.1 and trained.optim.nesterov is False
    selection = json.loads((tmp_path / "a" / "selection.json").read_text())
    assert selection == json.loads((tmp_path / "b" / "selection.json").read_text())
    assert "derived" not in selection
    if name in ("DARTS", "GDAS", "PCDARTS"):
        initial = STRATEGIES.get(name.lower())(network={"C": 4, "N": 1, "affine": False}).arch_weights
        groups = ["ops", "edges"] if name == "PCDARTS" else ["ops"]
        assert sorted(k for k in a["state_dict"] if k.startswith("arch_weights.")) == sorted(
            f"arch_weights.{g}" for g in groups)
        for group in groups:
            assert not torch.equal(a["state_dict"][f"arch_weights.{group}"], initial[group]), f"{group} never updated"
        assert (tmp_path / "a" / "decoding.csv").read_text().count("\n") == 2  # header + one epoch
        # the top-level answer is the strategy's own: its decoded alpha, with the shared-weight
        # selection reported beside it
        assert selection["architecture"] == str(trained.derive_architecture())
        assert selection["answer_source"] == f"{name}: decoded from its architecture weights"
        assert selection["shared_weight_selection"]["candidates"] == 3
    else:
        assert selection["answer_source"].startswith(f"{name}: shared-weight selection")
        assert "shared_weight_selection" not in selection
    if name == "ENAS":
        assert (tmp_path / "a" / "decoding.csv").is_file()
        assert selection["candidate_source"] == "ENAS policy"
        assert not torch.equal(a["state_dict"]["baseline"], torch.zeros((), dtype=torch.float64))


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
