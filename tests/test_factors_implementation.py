"""Implementation factors of "How to Train Your Super-Net" (Yu et al., Table 1): the OFA kernel, op on
node vs. op on edge, interpolated dynamic channels and per-sub-space scoring. Each test checks what
the factor computes, and that it is refused in one line where it cannot apply."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_nas.errors import RecipeError
from lightning_nas.nn.darts_cnn import DartsCNNNetwork, count_parameters
from lightning_nas.nn.darts_ops import ElasticDepthwise
from lightning_nas.registry import NETWORKS
from lightning_nas.spaces.darts_cnn import DartsCNNSpace, Genotype
from lightning_nas.strategies import SPOS

X = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _spos(space: str, network: dict) -> SPOS:
    return SPOS(space=space, network={**NETWORKS.get(space).tiny_options, **network}, num_classes=3, in_channels=1, seed=7)


# ---------------------------------------------------------------------------------------------- OFA kernel
def _darts(ofa: bool, space: DartsCNNSpace | None = None, seed: int = 0) -> DartsCNNNetwork:
    torch.manual_seed(seed)
    return DartsCNNNetwork(space or DartsCNNSpace(num_nodes=1), num_classes=3, in_channels=1, C=4, layers=3,
                           ofa_kernel=ofa)


def test_ofa_small_kernel_is_the_transformed_centre_of_the_large_one():
    """Hand check (Cai et al. Sec. 3.2): the 3x3 kernel is M applied to the flattened centre 3x3 of
    the 5x5, the same M for every channel; the 3x3 convolution runs with it at padding 1."""
    conv = ElasticDepthwise(2, (3, 5), stride=1, dilation=1)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        conv.conv.weight.copy_(torch.randn(2, 1, 5, 5, generator=gen))
        conv.transforms["3"].copy_(torch.randn(9, 9, generator=gen))
    w, m = conv.conv.weight.detach(), conv.transforms["3"].detach()
    expected = torch.empty(2, 1, 3, 3)
    for c in range(2):
        centre = [float(w[c, 0, 1 + i, 1 + j]) for i in range(3) for j in range(3)]
        for out in range(9):
            expected[c, 0, out // 3, out % 3] = sum(float(m[out, i]) * centre[i] for i in range(9))
    assert torch.allclose(conv.kernel(3), expected, atol=1e-5)
    x = torch.randn(1, 2, 6, 6, generator=gen)
    assert torch.allclose(conv(x, 3), F.conv2d(x, expected, padding=1, groups=2), atol=1e-5)
    assert torch.equal(conv(x, 5), F.conv2d(x, w, padding=2, groups=2))
    fresh = ElasticDepthwise(2, (3, 5), stride=1, dilation=2)  # OFA's identity start: the plain centre
    assert torch.equal(fresh.kernel(3), fresh.conv.weight[:, :, 1:4, 1:4])
    three = ElasticDepthwise(1, (3, 5, 7), stride=1, dilation=1)  # 7 -> 5 -> 3: two matrices in a chain
    with torch.no_grad():
        three.transforms["5"].mul_(2.0)
    assert torch.allclose(three.kernel(3), 2.0 * three.conv.weight[:, :, 2:5, 2:5])


def test_ofa_gradients_reach_the_shared_kernel_from_both_sizes():
    conv = ElasticDepthwise(2, (3, 5), stride=1, dilation=1)
    x = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    conv(x, 3).square().sum().backward()
    grad = conv.conv.weight.grad
    assert grad[:, :, 1:4, 1:4].abs().sum() > 0 and conv.transforms["3"].grad.abs().sum() > 0
    rim = grad.clone()
    rim[:, :, 1:4, 1:4] = 0
    assert rim.abs().sum() == 0  # the small size reads the centre only
    conv.zero_grad()
    conv(x, 5).square().sum().backward()
    assert conv.conv.weight.grad[:, :, 0].abs().sum() > 0  # the large size trains the rim too
    assert conv.transforms["3"].grad is None or conv.transforms["3"].grad.abs().sum() == 0
    # in the network: a sep_conv_3x3 path trains its edge's shared sep_conv module
    net = _darts(True)
    arch = Genotype.from_pairs([("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], [("dil_conv_3x3", 0), ("dil_conv_3x3", 1)])
    net(X, arch).sum().backward()
    shared = net.cells[0].edges["0"]["sep_conv"].first.depthwise.conv.weight
    assert shared.grad is not None and shared.grad.abs().sum() > 0


def test_ofa_parameter_count_drops_by_the_smaller_sizes_less_their_matrices():
    """Each edge loses its sep_conv_3x3 and dil_conv_3x3 modules and gains one 9x9 matrix per elastic
    depthwise convolution (two in a separable unit pair, one in a dilated convolution)."""
    plain, ofa = _darts(False), _darts(True)
    small = sum(p.numel() for k, p in plain.named_parameters() if ".sep_conv_3x3." in k or ".dil_conv_3x3." in k)
    edges = sum(len(cell.edges) for cell in plain.cells)
    assert count_parameters(plain) - count_parameters(ofa) == small - edges * 3 * 81
    assert not any(".sep_conv_3x3." in k or ".dil_conv_3x3." in k for k in ofa.state_dict())
    assert any(".sep_conv_3x3." in k for k in plain.state_dict())


def test_ofa_single_path_relaxation_and_standalone_agree_and_are_deterministic():
    net = _darts(True).eval()
    space = net.space
    arch = Genotype.from_pairs([("sep_conv_3x3", 0), ("dil_conv_5x5", 1)], [("sep_conv_5x5", 0), ("dil_conv_3x3", 1)])
    path = net(X, arch)
    assert torch.allclose(net.forward_weighted(X, space.one_hot(arch)), path, atol=1e-6)
    assert torch.equal(net.standalone(arch).eval()(X), path)
    mixed = net.forward_weighted(X, {k: torch.full_like(v, 0.5) for k, v in space.one_hot(arch).items()})
    assert torch.isfinite(mixed).all()
    assert torch.equal(_darts(True).eval()(X, arch), path)  # same seed, same network, same output
    assert not torch.equal(_darts(False).eval()(X, arch), path)


def test_ofa_kernel_is_refused_in_one_line_where_no_family_has_two_sizes():
    space = DartsCNNSpace(num_nodes=1, operations=("skip_connect", "sep_conv_3x3", "dil_conv_5x5"))
    with pytest.raises(RecipeError, match="model.network.ofa_kernel") as error:
        _darts(True, space)
    assert "\n" not in str(error.value)
    with pytest.raises(RecipeError, match="ofa_kernel") as error:  # NB201's network takes no such key
        _spos("nb201", {"ofa_kernel": True})
    assert "\n" not in str(error.value)
