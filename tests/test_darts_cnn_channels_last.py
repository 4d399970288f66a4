"""Channels-last input on tiny DARTS CNN networks: the oneDNN heap corruption stays impossible.

oneDNN (torch 2.13, CPU) corrupts the heap computing the weight gradient of a 1x1 stride-2
convolution on channels-last input with 2-6 input channels; the batch augmentation's crop yields
channels-last batches, and PC-DARTS' partial edges of tiny networks give a factorized reduction that
few channels (``darts_ops.ONEDNN_SAFE_CHANNELS``). The crash kills the process, so the channels-last
scenarios (and the check that they give the standard layout's gradients) run in a child process.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from lightning_nas.nn.darts_ops import FactorizedReduce

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = """
import torch
from lightning_nas.nn.darts_cnn import DartsCNNNetwork
from lightning_nas.nn.darts_ops import FactorizedReduce
from lightning_nas.spaces.darts_cnn import DartsCNNSpace
torch.manual_seed(0)
for c in (2, 4, 6):  # the corrupting channel counts; kernels channels-last too
    reduce = FactorizedReduce(c, c).to(memory_format=torch.channels_last)
    for _ in range(5):
        reduce(torch.randn(32, c, 8, 8).contiguous(memory_format=torch.channels_last)).sum().backward()
reduce, x, grads = FactorizedReduce(4, 4), torch.randn(8, 4, 8, 8), []
for layout in (torch.contiguous_format, torch.channels_last):  # the same values either way
    reduce.zero_grad()
    reduce(x.contiguous(memory_format=layout)).square().sum().backward()
    grads.append(reduce.conv_1.weight.grad.clone())
assert torch.allclose(grads[0], grads[1], atol=1e-5), (grads[0] - grads[1]).abs().max()
space = DartsCNNSpace(num_nodes=2)  # the digits fixture with PC-DARTS, K=2: 2 channels per partial edge
net = DartsCNNNetwork(space=space, C=4, layers=3, partial_channels=2, in_channels=1)
weights = {g.name: torch.rand(g.shape, requires_grad=True) for g in space.relaxation}
for _ in range(3):
    x = torch.randn(32, 8, 8, 1).permute(0, 3, 1, 2)  # the crop's layout
    net.forward_weighted(x, weights).sum().backward()
print("survived")
"""


def test_channels_last_factorized_reduction_with_few_channels_survives_backward():
    done = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "survived" in done.stdout, (done.returncode, done.stderr[-2000:])


def test_standard_input_is_two_offset_strided_convolutions():
    """Standard-layout input runs exactly as before the guard: two offset 1x1 stride-2 convolutions."""
    torch.manual_seed(0)
    reduce = FactorizedReduce(4, 4)
    x = torch.randn(8, 4, 8, 8)
    expected = reduce.bn(torch.cat([reduce.conv_1(x.relu()), reduce.conv_2(x.relu()[:, :, 1:, 1:])], dim=1))
    assert torch.equal(reduce(x), expected)
