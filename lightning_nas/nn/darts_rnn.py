"""The DARTS/ENAS recurrent language model, as a super-net and as a stand-alone network.

Embedding -> recurrent cell over the time steps of a window -> linear decoder over the vocabulary
(weights tied to the embedding by default, as in DARTS and AWD-LSTM). The cell (Liu et al. 2019,
Sec. 2.1 / App. A.1.2; Pham et al. 2018, App. A, Eq. 2-5):

    [c0, h0] = W0 [x_t, h_{t-1}],           s0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1})
    [ci, hi] = W_{i,j} s_j  (j = pred(i)),  s_i = s_j + sigmoid(ci) * (act_i(hi) - s_j)
    h_t = mean(s_1, ..., s_n)

Weight sharing (``weight_sharing``): ``"edge"`` (default) keeps one matrix W_{i,j} per node and
predecessor, shared by the four activations: ENAS' parameterisation (Pham et al., Eq. 4-5, the
one Yu et al. use for their weight-sharing runs). Architectures then share a matrix only when
they make the same connection, and a stand-alone network carries exactly its n connection
matrices. ``"node"`` is DARTS' code: one W_i per node, shared by every predecessor and activation
(more sharing; a stand-alone net holds all n matrices). Activations have no parameters, so in
both modes the super-net path and the stand-alone network are the same function of the same
tensors (``standalone(arch)`` copies them; the stand-alone keys are a subset of the super-net's).

Initialisation: cell matrices uniform in [-0.04, 0.04] (ENAS App. A for a fixed architecture;
DARTS' INITRANGE), embedding and untied decoder uniform in [-0.1, 0.1], decoder bias 0 (DARTS /
AWD-LSTM). Drawn from torch's global generator, which ``seed_everything`` seeds. The hidden
state starts at zero in every window (stateless truncated BPTT; see ``lightning_nas.data.ptb``).
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.spaces.darts_rnn import ACTIVATIONS, DEFAULT_NUM_NODES, DartsRNNArchitecture, rnn_edges

ACTIVATION_FUNCTIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}
WeightSharing = Literal["edge", "node"]


class DartsRNNCell(nn.Module):
    """The recurrent cell; ``connections`` are the (node, predecessor) pairs whose matrices exist."""

    def __init__(self, input_size: int, hidden_size: int, num_nodes: int,
                 connections: Sequence[tuple[int, int]], weight_sharing: WeightSharing = "edge",
                 init_range: float = 0.04) -> None:
        super().__init__()
        if weight_sharing not in ("edge", "node"):
            raise ValueError(f"model.network.weight_sharing must be 'edge' or 'node', got {weight_sharing!r}")
        self.hidden_size, self.num_nodes, self.weight_sharing = hidden_size, num_nodes, weight_sharing
        self.w0 = nn.Parameter(torch.empty(input_size + hidden_size, 2 * hidden_size).uniform_(-init_range, init_range))
        keys = dict.fromkeys(self.key(i, j) for i, j in connections)  # ordered, without repeats
        self.node_weights = nn.ParameterDict({
            key: nn.Parameter(torch.empty(hidden_size, 2 * hidden_size).uniform_(-init_range, init_range))
            for key in keys})

    def key(self, node: int, predecessor: int) -> str:
        return f"node{node}_from{predecessor}" if self.weight_sharing == "edge" else f"node{node}"

    def matrix(self, node: int, predecessor: int) -> torch.Tensor:
        key = self.key(node, predecessor)
        if key not in self.node_weights:
            raise ValueError(f"this network has no weights for node {node} from node {predecessor}: a stand-alone "
                             "network runs only its own architecture")
        return self.node_weights[key]

    @staticmethod
    def _highway(s: torch.Tensor, ch: torch.Tensor, activation) -> torch.Tensor:
        c, h = ch.chunk(2, dim=-1)
        return s + torch.sigmoid(c) * (activation(h) - s)

    def _run(self, x: torch.Tensor, step) -> torch.Tensor:
        """(B, T, E) inputs -> (B, T, H) cell outputs, h_0 = 0; ``step(s0)`` gives the intermediate states."""
        batch, steps, inputs = x.shape
        w_x, w_h = self.w0[:inputs], self.w0[inputs:]
        projected = x @ w_x  # the x_t part of W0 [x_t, h_{t-1}] for every t at once
        h = x.new_zeros(batch, self.hidden_size)
        outputs = []
        for t in range(steps):
            s0 = self._highway(h, projected[:, t] + h @ w_h, torch.tanh)
            states = step(s0)
            h = torch.stack(states, dim=0).mean(dim=0)
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    def forward(self, x: torch.Tensor, nodes: Sequence[tuple[str, int]]) -> torch.Tensor:
        """One path: node i applies ``nodes[i-1] = (activation, predecessor)``."""
        if len(nodes) != self.num_nodes:
            raise ValueError(f"the architecture has {len(nodes)} nodes, this network {self.num_nodes} "
                             "(set model.network.num_nodes to model.space_options.num_nodes)")
        matrices = [self.matrix(i, j) for i, (_, j) in enumerate(nodes, start=1)]
        functions = [ACTIVATION_FUNCTIONS[a] for a, _ in nodes]

        def step(s0: torch.Tensor) -> list[torch.Tensor]:
            states = [s0]
            for (_, j), w, f in zip(nodes, matrices, functions):
                states.append(self._highway(states[j], states[j] @ w, f))
            return states[1:]

        return self._run(x, step)

    def forward_mixture(self, x: torch.Tensor, weights: torch.Tensor, operations: Sequence[str]) -> torch.Tensor:
        """DARTS' relaxation of the recurrent cell (Liu et al. 2019, Eq. 2 and App. A.1.2):
        s_i = sum_{j<i} sum_o weights[(i,j), o] * (s_j + c_ij * (o(h_ij) - s_j)); rows in ``rnn_edges``
        order. The weights are used as given (the strategy normalises them)."""
        edges = rnn_edges(self.num_nodes)
        if tuple(weights.shape) != (len(edges), len(operations)):
            raise ValueError(f"mixture weights must have shape {(len(edges), len(operations))}, "
                             f"got {tuple(weights.shape)}")
        matrices = [self.matrix(i, j) for i, j in edges]
        functions = [ACTIVATION_FUNCTIONS[o] for o in operations]

        def step(s0: torch.Tensor) -> list[torch.Tensor]:
            states = [s0]
            e = 0
            for i in range(1, self.num_nodes + 1):
                total = torch.zeros_like(s0)
                for j in range(i):
                    c, h = (states[j] @ matrices[e]).chunk(2, dim=-1)
                    c = torch.sigmoid(c)
                    for o, f in enumerate(functions):
                        total = total + weights[e, o] * (states[j] + c * (f(h) - states[j]))
                    e += 1
                states.append(total)
            return states[1:]

        return self._run(x, step)


class DartsRNNNetwork(nn.Module):
    """Recurrent language model; a super-net when ``arch`` is None, else the stand-alone net of ``arch``.

    Args:
        num_classes: the vocabulary size (linked from the DataModule). ``in_channels`` is ignored.
        embedding_size, hidden_size: 300 and 300 are DARTS' search sizes (850 for final training).
        num_nodes: intermediate nodes; None takes the architecture's (stand-alone) or DARTS' 8.
        weight_sharing: ``edge`` (ENAS, one matrix per connection) or ``node`` (DARTS, one per node).
        init_range: cell matrices ~ U(-r, r); 0.04 (ENAS fixed architectures; ENAS searches with 0.025).
        tie_weights: decoder weight = embedding (needs embedding_size == hidden_size).
        dropout: on the cell outputs before the decoder; 0 (off) keeps runs bit-for-bit deterministic.
        operations: the activations ``forward_mixture`` mixes (the strategy passes the space's).
    """

    def __init__(self, num_classes: int = 10000, in_channels: int = 1, embedding_size: int = 300,
                 hidden_size: int = 300, num_nodes: Optional[int] = None, arch: Optional[DartsRNNArchitecture] = None,
                 operations: Sequence[str] = ACTIVATIONS, weight_sharing: WeightSharing = "edge",
                 init_range: float = 0.04, tie_weights: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if num_nodes is None:
            num_nodes = arch.num_nodes if arch is not None else DEFAULT_NUM_NODES
        if num_classes < 1 or embedding_size < 1 or hidden_size < 1 or num_nodes < 1:
            raise ValueError(f"DARTS RNN network needs positive sizes, got num_classes={num_classes}, "
                             f"embedding_size={embedding_size}, hidden_size={hidden_size}, num_nodes={num_nodes}")
        if arch is not None and arch.num_nodes != num_nodes:
            raise ValueError(f"model.network.num_nodes={num_nodes} but the architecture {arch} has {arch.num_nodes}")
        if tie_weights and embedding_size != hidden_size:
            raise ValueError(f"model.network.tie_weights needs embedding_size == hidden_size, got {embedding_size} "
                             f"and {hidden_size}")
        if not 0 <= dropout < 1:
            raise ValueError(f"model.network.dropout must be in [0, 1), got {dropout}")
        unknown = [op for op in operations if op not in ACTIVATIONS]
        if unknown:
            raise ValueError(f"unknown activations {unknown}; known: {list(ACTIVATIONS)}")
        self.config = dict(num_classes=num_classes, in_channels=in_channels, embedding_size=embedding_size,
                           hidden_size=hidden_size, num_nodes=num_nodes, weight_sharing=weight_sharing,
                           init_range=init_range, tie_weights=tie_weights, dropout=dropout)
        self.arch, self.operations, self.dropout = arch, tuple(operations), dropout
        self.encoder = nn.Embedding(num_classes, embedding_size)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        connections = ([(i, j) for i, (_, j) in enumerate(arch.nodes, start=1)] if arch is not None
                       else list(rnn_edges(num_nodes)))
        self.cell = DartsRNNCell(embedding_size, hidden_size, num_nodes, connections, weight_sharing, init_range)
        self.decoder = nn.Linear(hidden_size, num_classes)
        nn.init.zeros_(self.decoder.bias)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def _run(self, x: torch.Tensor, cell_forward) -> torch.Tensor:
        """(B, T) token ids -> (B*T, V) logits, row b*T + t predicting the token after x[b, t]."""
        if x.dim() != 2:
            raise ValueError(f"expected a (batch, time) tensor of token ids, got shape {tuple(x.shape)}")
        outputs = cell_forward(self.encoder(x))
        outputs = F.dropout(outputs, self.dropout, self.training) if self.dropout else outputs
        return self.decoder(outputs.reshape(-1, outputs.shape[-1]))

    def forward(self, x: torch.Tensor, arch: Optional[DartsRNNArchitecture] = None) -> torch.Tensor:
        arch = arch if arch is not None else self.arch
        if arch is None:
            raise ValueError("a super-net forward needs an architecture: call net(x, arch)")
        return self._run(x, lambda emb: self.cell(emb, arch.nodes))

    def forward_mixture(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Continuous relaxation: ``weights`` has shape (len(rnn_edges(num_nodes)), len(operations))."""
        return self._run(x, lambda emb: self.cell.forward_mixture(emb, weights, self.operations))

    def standalone(self, arch: DartsRNNArchitecture) -> "DartsRNNNetwork":
        """The stand-alone network of ``arch`` carrying this super-net's weights for that path."""
        net = DartsRNNNetwork(**self.config, arch=arch)
        shared = self.state_dict()
        net.load_state_dict({key: shared[key] for key in net.state_dict()})
        return net
