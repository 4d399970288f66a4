"""NAS-Bench-1Shot1 spaces 1-3: Table 1 counts, decisions, decoding, NB101 keys and the one-shot network."""
from __future__ import annotations

import pytest
import torch

import lightning_nas.nn.nb1shot1  # noqa: F401  (registers the network)
from lightning_nas.errors import ArchitectureError
from lightning_nas.nn.base import ActiveSet
from lightning_nas.nn.nb1shot1 import NB1Shot1Network
from lightning_nas.registry import NETWORKS, SPACES
from lightning_nas.spaces.nb101 import CONV1X1, CONV3X3, MAXPOOL3X3
from lightning_nas.spaces.nb1shot1 import PUBLISHED_COUNTS, NB1Shot1Architecture, NB1Shot1Space

SPACE_IDS = (1, 2, 3)


@pytest.mark.parametrize("s", SPACE_IDS)
def test_table1_counts(s):
    space = NB1Shot1Space(s)
    with_loose, without = PUBLISHED_COUNTS[s]
    assert space.count_without_loose_ends() == without
    if s == 2:  # Table 1 counts every combination for space 2 (see docs/nb101.md)
        assert space.size == with_loose
    else:
        assert space.count_with_loose_ends() == with_loose


def test_table1_parents_sum_to_nine():
    for s in SPACE_IDS:
        assert sum(NB1Shot1Space(s).num_parents) == 9


@pytest.mark.parametrize("s", SPACE_IDS)
def test_decisions_round_trip_and_sampling(s):
    space = NB1Shot1Space(s)
    g = torch.Generator().manual_seed(s)
    for _ in range(30):
        arch = space.sample(g)
        assert space.from_decisions(space.to_decisions(arch)) == arch
        assert space.parse(str(arch)) == arch
        assert space.decode(space.one_hot(arch)) == arch
        assert space.key(arch) == arch.to_nb101().hash
        for group in space.relaxation:
            assert tuple(space.one_hot(arch)[group.name].shape) == group.shape
    with pytest.raises(ArchitectureError):
        space.parse("conv3x3-bn-relu~0|output~0")


def test_decode_top_k_and_argmax():
    space = NB1Shot1Space(3)
    raw = {g.name: torch.zeros(g.shape) for g in space.relaxation}
    raw["ops"][:, 2] = 1.0  # maxpool everywhere ...
    raw["ops"][4, 0] = 5.0  # ... but block 5 picks conv3x3
    a, _ = space.input_segments[4]  # block 4 (2 parents among 0..3): favour 1 and 3
    raw["inputs"][a + 1] = raw["inputs"][a + 3] = 2.0
    raw["output"][2] = raw["output"][5] = 3.0
    weights = {g.name: g.normalise(raw[g.name]) for g in space.relaxation}
    arch = space.decode(weights)
    assert arch.ops == (MAXPOOL3X3,) * 4 + (CONV3X3,)
    assert arch.parents[3] == (1, 3) and arch.parents[-1] == (2, 5)
    cell = arch.to_nb101()
    assert cell.matrix[1][4] == cell.matrix[3][4] == 1 and cell.matrix[2][6] == cell.matrix[5][6] == 1


def test_loose_ends_are_pruned_in_the_key():
    # space 1: block 3 is a loose end (nobody reads it); its operation does not change the NB101 cell
    a = NB1Shot1Architecture((CONV3X3, CONV1X1, CONV3X3, MAXPOOL3X3), ((0,), (0, 1), (0, 1), (1, 2), (0, 4)))
    b = NB1Shot1Architecture((CONV3X3, CONV1X1, MAXPOOL3X3, MAXPOOL3X3), a.parents)
    assert a.live == {1, 2, 4} and a.has_loose_ends
    space = NB1Shot1Space(1)
    assert space.key(a) == space.key(b)


def test_registered():
    assert SPACES.get("nb1shot1") is NB1Shot1Space and NETWORKS.get("nb1shot1") is NB1Shot1Network


@pytest.mark.parametrize("s", SPACE_IDS)
def test_one_hot_and_standalone_equal_single_path(s):
    torch.manual_seed(0)
    space = NB1Shot1Space(s)
    net = NB1Shot1Network(space, in_channels=1, C=4, num_stacks=2, cells_per_stack=1)
    x = torch.randn(3, 1, 8, 8)
    g = torch.Generator().manual_seed(10 + s)
    net.train()  # move BN statistics away from their initial values
    weights = {grp.name: grp.normalise(torch.randn(grp.shape)) for grp in space.relaxation}
    net.forward_weighted(x, weights).sum().backward()
    net.eval()
    with torch.no_grad():
        for _ in range(8):
            arch = space.sample(g)
            one_path = net(x, arch)
            assert torch.equal(one_path, net.forward_weighted(x, space.one_hot(arch)))
            assert torch.equal(one_path, net.standalone(arch).eval()(x))


def test_gdas_style_active_option():
    space = NB1Shot1Space(2)
    net = NB1Shot1Network(space, in_channels=1, C=4, num_stacks=1, cells_per_stack=1).eval()
    arch = space.sample(torch.Generator().manual_seed(0))
    weights = space.one_hot(arch)
    active = ActiveSet({"ops": weights["ops"].argmax(dim=-1, keepdim=True)})
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x, arch), net.forward_weighted(x, weights, active))


def test_partial_channel_one_shot_model():
    """PC-DARTS: mixed operations on 1/K of the channels; a path is scored as its one-hot relaxation."""
    space = NB1Shot1Space(2)
    net = NB1Shot1Network(space, in_channels=1, C=8, num_stacks=1, cells_per_stack=1, partial_channels=4).eval()
    conv = net.cells[0].ops["1"]["conv3x3-bn-relu"].conv
    assert conv.in_channels == conv.out_channels == 2
    x = torch.randn(2, 1, 8, 8)
    arch = space.sample(torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(net(x, arch), net.forward_weighted(x, space.one_hot(arch)))
    with pytest.raises(ValueError, match="stand-alone"):
        net.standalone(arch)


# ------------------------------------------------------------------ the authors' one-shot model
#: parameters of the authors' one-shot model (automl/nasbench-1shot1, optimizers/darts/model_search.py,
#: ``--init_channels 16 --layers 9``): spaces 1-2 have 4 choice blocks, space 3 has 5
AUTHORS_PARAMETERS = {1: 1_101_402, 2: 1_101_402, 3: 1_509_594}


def _cell_input_sizes(net: NB1Shot1Network, x: torch.Tensor) -> list[int]:
    sizes = []
    for cell in net.cells:  # every cell projects its input into the output: its input's spatial size
        cell.out_proj.register_forward_hook(lambda module, inputs, output: sizes.append(inputs[0].shape[-1]))
    weights = {g.name: g.normalise(torch.zeros(g.shape)) for g in net.space.relaxation}
    with torch.no_grad():
        net.eval().forward_weighted(x, weights)
    return sizes


@pytest.mark.parametrize("s", SPACE_IDS)
def test_default_is_the_authors_one_shot_model(s):
    """The paper's one-shot model (C=16, 9 cells): the authors' parameter count; NB101's macro has the
    affine parameters of the post-processing BN (2 x 64) more."""
    authors = NB1Shot1Network(NB1Shot1Space(s))
    nb101 = NB1Shot1Network(NB1Shot1Space(s), macro="nb101")
    assert authors.config["macro"] == "oneshot1"
    assert sum(p.numel() for p in authors.parameters()) == AUTHORS_PARAMETERS[s]
    assert sum(p.numel() for p in nb101.parameters()) == AUTHORS_PARAMETERS[s] + 2 * 64


def test_macro_choices_pool_padding_postprocessing_and_batch_norm():
    x = torch.randn(2, 3, 32, 32)
    authors, nb101 = NB1Shot1Network(NB1Shot1Space(1)), NB1Shot1Network(NB1Shot1Space(1), macro="nb101")
    # MaxPool2d(2, 2, padding=1): cells see 17x17 and 9x9 (NB101's unpadded pooling: 16x16 and 8x8)
    assert _cell_input_sizes(authors, x) == [32] * 3 + [17] * 3 + [9] * 3
    assert _cell_input_sizes(nb101, x) == [32] * 3 + [16] * 3 + [8] * 3
    # post-processing: ReLU -> 1x1 conv -> BN without affine parameters (torch's momentum 0.1) ...
    post = authors.postprocess
    assert not post.bn.affine and post.bn.momentum == 0.1
    h = torch.randn(2, post.conv.in_channels, 3, 3)
    post.eval()
    assert torch.equal(post(h), post.bn(post.conv(torch.relu(h))))
    # ... NB101's: conv -> BN (affine) -> ReLU
    assert nb101.postprocess.bn.affine
    nb101.postprocess.eval()
    assert torch.equal(nb101.postprocess(h), torch.relu(nb101.postprocess.bn(nb101.postprocess.conv(h))))
    # every other BN: the authors' BN_MOMENTUM = 0.997 passed to nn.BatchNorm2d (PyTorch's convention)
    others = [m for name, m in authors.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and not name.startswith("postprocess")]
    assert others and all(m.momentum == 0.997 and m.affine for m in others)
    assert {m.momentum for m in nb101.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}
    assert {m.momentum for m in NB1Shot1Network(NB1Shot1Space(1), C=4, bn_momentum=0.003).modules()
            if isinstance(m, torch.nn.BatchNorm2d)} == {0.003, 0.1}  # 0.1: the post-processing BN


def test_unknown_macro_is_a_clear_error():
    with pytest.raises(ValueError, match="model.network.macro"):
        NB1Shot1Network(NB1Shot1Space(1), macro="nasbench")


@pytest.mark.parametrize("macro", ["oneshot1", "nb101"])
def test_both_macros_keep_single_path_equal_one_hot_and_standalone(macro):
    torch.manual_seed(1)
    space = NB1Shot1Space(3)
    net = NB1Shot1Network(space, in_channels=1, C=4, num_stacks=2, cells_per_stack=1, macro=macro).eval()
    x = torch.randn(2, 1, 8, 8)
    arch = space.sample(torch.Generator().manual_seed(3))
    with torch.no_grad():
        one_path = net(x, arch)
        assert torch.equal(one_path, net.forward_weighted(x, space.one_hot(arch)))
        assert torch.equal(one_path, net.standalone(arch).eval()(x))
