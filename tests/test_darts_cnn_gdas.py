"""GDAS on the DARTS CNN space as the authors' DARTS-space port (xautodl) defines it.

- The straight-through estimator comes from the network (the authors' port for its space): NB201
  ``reference`` (xautodl's ``NAS201SearchCell.forward_gdas``), DARTS CNN ``sampled`` (xautodl's
  ``NASNetSearchCell.forward_gdas``); a recipe may name either.
- The network options of ``recipes/darts_cnn_gdas.yaml`` (6 cells, BN + ReLU head, no BN after
  pooling, conv biases) build xautodl's ``NASNetworkGDAS``: with its weights copied in and the same
  Gumbel noise, logits and gradients equal the authors' module's. That comparison runs where the
  authors' code is present: ``XAUTODL_ROOT`` names a directory holding ``xautodl/models`` (a checkout
  of D-X-Y/AutoDL-Projects), or the ``xautodl`` package is installed; its three files are loaded by
  path (the package itself may not import with this torch), nothing of it is in this repository.

``python tests/test_darts_cnn_gdas.py [XAUTODL_ROOT]`` prints the comparison's numbers.
"""
from __future__ import annotations

import importlib
import itertools
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Iterator, Optional

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from lightning_nas.nn.base import ActiveSet
from lightning_nas.nn.darts_cnn import DartsCNNNetwork, count_parameters
from lightning_nas.nn.darts_ops import FactorizedReduce
from lightning_nas.registry import NETWORKS
from lightning_nas.spaces.darts_cnn import cell_edges
from lightning_nas.strategies import GDAS
from lightning_nas.strategies.gdas import hard_gumbel

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "darts_cnn_gdas.yaml"
#: xautodl's DARTS_SPACE names of this space's operations
XAUTODL_NAMES = {"none": "none", "skip_connect": "skip_connect", "sep_conv_3x3": "dua_sepc_3x3",
                 "sep_conv_5x5": "dua_sepc_5x5", "dil_conv_3x3": "dil_sepc_3x3", "dil_conv_5x5": "dil_sepc_5x5",
                 "avg_pool_3x3": "avg_pool_3x3", "max_pool_3x3": "max_pool_3x3"}


def recipe_network() -> dict:
    return yaml.safe_load(RECIPE.read_text())["model"]["init_args"]["network"]


# ---------------------------------------------------------------------------- the estimator per space
@pytest.mark.parametrize(("space", "network", "expected"), [
    ("nb201", {"C": 4, "N": 1}, "reference"),
    ("darts_cnn", {"C": 4, "layers": 3}, "sampled"),
])
def test_gdas_estimator_is_the_spaces_port(space, network, expected):
    """No ``straight_through`` in the recipe: the network's, i.e. the authors' port for the space."""
    assert NETWORKS.get(space).straight_through == expected
    strategy = GDAS(space=space, network=network, num_classes=3, in_channels=1)
    assert strategy.straight_through == expected
    _, active = strategy.sample_weights(tau=1.0)
    assert active.passthrough == (expected == "reference")
    other = "sampled" if expected == "reference" else "reference"
    assert GDAS(space=space, network=network, num_classes=3, in_channels=1, straight_through=other).straight_through == other


def test_gdas_recipe_states_the_darts_space_port():
    recipe = yaml.safe_load(RECIPE.read_text())["model"]["init_args"]
    assert recipe["straight_through"] == NETWORKS.get("darts_cnn").straight_through == "sampled"
    assert recipe["network"]["layers"] == 6 and recipe["network"]["head"] == "bn_relu"
    assert recipe["network"]["pool_bn"] is False and recipe["network"]["conv_bias"] is True


# ---------------------------------------------------------------------------- the network options
def test_network_options_add_exactly_xautodls_parts():
    """``conv_bias`` puts a bias on every cell convolution feeding a BN (not the depthwise ones, not
    the stem); ``head: bn_relu`` adds one affine BN before the pooling; ``pool_bn: false`` none after
    the pools. The defaults build DARTS' network unchanged (no new state)."""
    darts = DartsCNNNetwork(C=4, layers=3)
    xautodl = DartsCNNNetwork(C=4, layers=3, pool_bn=False, conv_bias=True, head="bn_relu")
    assert not any(k.startswith("head_act.") for k in darts.state_dict())
    assert not any(isinstance(m, nn.Conv2d) and m.bias is not None for m in darts.modules())
    for module in xautodl.cells.modules():
        if isinstance(module, nn.Sequential):
            for a, b in itertools.pairwise(module):
                if isinstance(a, nn.Conv2d):
                    assert (a.bias is not None) == isinstance(b, nn.BatchNorm2d), module
        if isinstance(module, FactorizedReduce):
            assert module.conv_1.bias is not None and module.conv_2.bias is not None
    assert xautodl.stem[0].bias is None
    pools = [op for cell in xautodl.cells for edge in cell.edges.values() for key, op in edge.items() if "pool" in key]
    assert pools and all(isinstance(op, (nn.MaxPool2d, nn.AvgPool2d)) for op in pools)
    head = xautodl.head_act[0]
    assert isinstance(head, nn.BatchNorm2d) and head.affine and head.track_running_stats
    # the head acts: a ReLU after an affine BN makes every pooled feature non-negative
    x = torch.randn(4, 3, 8, 8)
    feats = []
    hook = xautodl.classifier.register_forward_hook(lambda m, i, o: feats.append(i[0]))
    xautodl(x, xautodl.space.sample(torch.Generator().manual_seed(0)))
    hook.remove()
    assert (feats[0] >= 0).all()


def test_recipe_network_parameter_count():
    """The recipe's network at C=16: 6 cells, every option and edge (the xautodl comparison below
    finds the authors' ``NASNetworkGDAS`` has the same count, alphas aside)."""
    net = DartsCNNNetwork(**recipe_network())
    assert len(net.cells) == 6 and net.reductions == [2, 4]
    assert count_parameters(net) == 1_343_034


# ---------------------------------------------------------------------------- against the authors' code
def xautodl_root() -> Optional[Path]:
    """A directory holding ``xautodl/models`` (``XAUTODL_ROOT`` or the installed package), else None."""
    candidates = [os.environ.get("XAUTODL_ROOT")]
    spec = importlib.util.find_spec("xautodl")
    if spec is not None and spec.origin:
        candidates.append(str(Path(spec.origin).parents[1]))
    for candidate in candidates:
        if candidate and (Path(candidate) / "xautodl/models/cell_searchs/search_model_gdas_nasnet.py").is_file():
            return Path(candidate)
    return None


def load_xautodl_gdas(root: Path) -> types.ModuleType:
    """xautodl's DARTS-space GDAS module loaded by path: its package ``__init__`` files import far more
    than this needs (and not all of it under this torch), so two empty packages stand in for them."""
    name = "_xautodl_models"
    for package, path in ((name, root / "xautodl/models"), (f"{name}.cell_searchs", root / "xautodl/models/cell_searchs")):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(path)]
            sys.modules[package] = module
    return importlib.import_module(f"{name}.cell_searchs.search_model_gdas_nasnet")


def module_pairs(net: DartsCNNNetwork, ref: nn.Module) -> Iterator[tuple[nn.Module, nn.Module]]:
    """(ours, theirs) for every module holding state, operation by operation."""
    yield net.stem, ref.stem
    edges = cell_edges(net.space.num_nodes)
    for cell, ref_cell in zip(net.cells, ref.cells, strict=True):
        yield cell.preprocess0, ref_cell.preprocess0
        yield cell.preprocess1, ref_cell.preprocess1
        for e, (node, source) in enumerate(edges):
            ref_edge = ref_cell.edges[f"{node - 2}<-{source}"]
            for key, op in cell.edges[str(e)].items():
                yield op, ref_edge._ops[ref.op_names.index(XAUTODL_NAMES[key])]
    yield net.head_act, ref.lastact
    yield net.classifier, ref.classifier


def copy_weights(net: DartsCNNNetwork, ref: nn.Module) -> None:
    """Their state into ours, tensor by tensor in registration order (the same in both)."""
    for ours, theirs in module_pairs(net, ref):
        mine, other = ours.state_dict(), theirs.state_dict()
        assert [v.shape for v in mine.values()] == [v.shape for v in other.values()], (ours, theirs)
        ours.load_state_dict(dict(zip(mine, (v.clone() for v in other.values()), strict=True)))


def compare_with_xautodl(module: types.ModuleType, C: int = 16, batch: int = 4, size: int = 32, seed: int = 0,
                         tau: float = 5.0, straight_through: str = "sampled") -> dict[str, float]:
    """Both networks on one batch with the same weights and the same Gumbel noise, in training mode:
    parameter counts, the largest logit and gradient differences, and alpha's relative gradient error."""
    torch.manual_seed(seed)
    space_names = list(XAUTODL_NAMES.values())
    ref = module.NASNetworkGDAS(C, 2, 4, 4, 3, 10, space_names, False, True)
    ref.set_tau(tau)
    net = DartsCNNNetwork(**{**recipe_network(), "C": C})
    copy_weights(net, ref)
    columns = [ref.op_names.index(XAUTODL_NAMES[name]) for name in net.operations]
    alphas = {"normal_ops": ref.arch_normal_parameters, "reduce_ops": ref.arch_reduce_parameters}
    ours = {g: a.detach()[:, columns].clone().requires_grad_(True) for g, a in alphas.items()}
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))

    torch.manual_seed(seed + 1)  # their forward draws its Gumbel noise from the global generator: normal, reduce
    noise = {g: -torch.empty_like(a).exponential_().log() for g, a in alphas.items()}
    torch.manual_seed(seed + 1)
    _, ref_logits = ref(x)
    F.cross_entropy(ref_logits, y).backward()

    weights, indices = {}, {}
    for g, alpha in ours.items():
        weights[g], indices[g] = hard_gumbel(alpha, noise[g][:, columns], tau)
    logits = net.forward_weighted(x, weights, ActiveSet(indices, passthrough=straight_through == "reference"))
    F.cross_entropy(logits, y).backward()

    arch = max((ours[g].grad - alphas[g].grad[:, columns]).abs().max().item() for g in ours)
    scale = max(alphas[g].grad.abs().max().item() for g in ours)
    weight_grad = 0.0
    for mine, theirs in module_pairs(net, ref):
        for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
            a = p.grad if p.grad is not None else torch.zeros_like(p)
            b = q.grad if q.grad is not None else torch.zeros_like(q)
            weight_grad = max(weight_grad, (a - b).abs().max().item())
    return {"parameters": count_parameters(net), "parameters_theirs": sum(p.numel() for p in ref.get_weights()),
            "alphas_theirs": sum(a.numel() for a in alphas.values()),
            "logits": (logits - ref_logits).abs().max().item(), "logit_scale": ref_logits.abs().max().item(),
            "arch_grad": arch, "arch_grad_relative": arch / scale, "weight_grad": weight_grad,
            "same_sample": float(all(torch.equal(indices[g].reshape(-1), noise_argmax(alphas[g], noise[g], tau, columns))
                                     for g in ours))}


def noise_argmax(alpha: torch.Tensor, gumbel: torch.Tensor, tau: float, columns: list[int]) -> torch.Tensor:
    """The option (in our column order) their sample picks."""
    picked = ((alpha.detach().log_softmax(-1) + gumbel) / tau).argmax(-1)
    return torch.tensor([columns.index(int(i)) for i in picked])


@pytest.fixture(scope="module")
def xautodl_gdas() -> types.ModuleType:
    root = xautodl_root()
    if root is None:
        pytest.skip("the authors' code is absent: set XAUTODL_ROOT to a checkout of D-X-Y/AutoDL-Projects")
    return load_xautodl_gdas(root)


def test_recipe_network_equals_xautodls_darts_space_gdas(xautodl_gdas):
    """Same weights, same sample: logits and every gradient equal the authors' (float32 rounding)."""
    numbers = compare_with_xautodl(xautodl_gdas, C=8, batch=4, size=16)
    assert numbers["same_sample"] == 1.0
    assert numbers["parameters"] == numbers["parameters_theirs"]
    assert numbers["logits"] < 1e-4 * max(1.0, numbers["logit_scale"])
    assert numbers["arch_grad_relative"] < 1e-4 and numbers["weight_grad"] < 1e-4, numbers
    # the NB201 port's estimator is not theirs on this space: alpha's gradient differs
    assert compare_with_xautodl(xautodl_gdas, C=8, batch=4, size=16, straight_through="reference")["arch_grad_relative"] > 1e-2


if __name__ == "__main__":
    found = Path(sys.argv[1]) if len(sys.argv) > 1 else xautodl_root()
    if found is None:
        raise SystemExit("usage: python tests/test_darts_cnn_gdas.py XAUTODL_ROOT (a checkout of D-X-Y/AutoDL-Projects)")
    gdas = load_xautodl_gdas(found)
    for mode in ("sampled", "reference"):
        print(mode, compare_with_xautodl(gdas, straight_through=mode))
