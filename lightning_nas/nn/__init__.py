"""Networks built from architectures: one super-net class per space, registered by space name.

A super-net ``net`` offers ``net(x, arch)`` (one path), ``net.forward_mixture(x, weights)``
(continuous relaxation) and ``net.standalone(arch)`` (the stand-alone network of one
architecture carrying the shared weights of its path).
"""
from torch import nn

from lightning_nas.registry import Registry

NETWORKS: Registry[type[nn.Module]] = Registry("network")

from lightning_nas.nn.nb201 import NB201Network  # noqa: E402

NETWORKS.register("nb201")(NB201Network)

from lightning_nas.nn.darts_rnn import DartsRNNNetwork  # noqa: E402

NETWORKS.register("darts_rnn")(DartsRNNNetwork)

__all__ = ["NETWORKS", "DartsRNNNetwork", "NB201Network"]
