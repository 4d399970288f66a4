"""Networks built from spaces: one super-net class per space, registered under the space's name.

Every network implements the protocol of ``lightning_nas.nn.base.SuperNet``: ``net(x, arch)``
(one path), ``net.forward_weighted(x, weights, active)`` (the relaxation, with the edge policy the
strategy picks) and ``net.standalone(arch)``. Importing this package imports every module of it, so
a new network file with its ``@NETWORKS.register`` decorator is registered without an import line.
"""
from lightning_nas.registry import NETWORKS, import_modules
from lightning_nas.nn.base import SuperNet
from lightning_nas.nn.nb201 import NB201Network
from lightning_nas.nn.darts_cnn import DartsCNNNetwork
from lightning_nas.nn.darts_rnn import DartsRNNNetwork
from lightning_nas.nn.nb101 import NB101Network
from lightning_nas.nn.nb1shot1 import NB1Shot1Network

import_modules(__name__, __path__)  # every other module: its decorator registers it

__all__ = ["NETWORKS", "DartsCNNNetwork", "DartsRNNNetwork", "NB101Network", "NB1Shot1Network", "NB201Network", "SuperNet"]
