"""The DARTS/ENAS recurrent language model, as a super-net and as a stand-alone network.

Embedding -> recurrent cell over the time steps of a window -> linear decoder over the vocabulary
(weights tied to the embedding by default, as in DARTS and AWD-LSTM). The cell (Liu et al. 2019,
Sec. 2.1 / App. A.1.2; Pham et al. 2018, App. A, Eq. 2-5):

    [c0, h0] = W0 [x_t, h_{t-1}],           s0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1})
    [ci, hi] = W_{i,j} s_j  (j = pred(i)),  s_i = s_j + sigmoid(ci) * (act_i(hi) - s_j)
    h_t = mean(s_1, ..., s_n)                  (``output: mean``, DARTS)
    h_t = mean(s_i : no node takes s_i)        (``output: loose_ends``, ENAS)

Weight sharing (``weight_sharing``): ``"edge"`` (default) keeps one matrix W_{i,j} per node and
predecessor, shared by the activations: ENAS' parameterisation (Pham et al., Eq. 4-5, the one Yu
et al. use for their weight-sharing runs). ``"node"`` is DARTS' code: one W_i per node, shared by
every predecessor. Activations have no parameters, so in both modes the super-net path and the
stand-alone network are the same function of the same tensors.

Search-time options (all off by default, which keeps every exactness test bit-for-bit):

- ``batchnorm``: ``nodes`` = DARTS' search cell (one ``BatchNorm1d(affine=False)`` after s0 and
  after every node, ``rnn/model_search.py``); ``output`` = ENAS (batch norm after the average,
  App. A "Stabilizing the Updates of w"). Both are meant for search only; stand-alone training
  of the derived cell drops them (ENAS: "we can remove the batch normalization layer without any
  loss in performance").
- AWD-LSTM regularisation (``lightning_nas.nn.rnn_regularisation``): ``dropout_embedding``
  (dropoute), ``dropout_input`` (dropouti, locked, on the embeddings), ``dropout_x`` / ``dropout_h``
  (DARTS' dropoutx / dropouth: variational masks on the cell's input x_t and on every hidden input
  of a matrix product, h_{t-1} and the node inputs s_j), ``weight_drop`` (DropConnect on the
  hidden-to-hidden rows of W0, AWD-LSTM's WeightDrop), ``dropout`` (locked, on the cell outputs),
  ``ar`` / ``tar`` (alpha / beta of activation and temporal activation regularisation: add
  ``net.regularisation_loss()`` to the loss after each training forward). Masks come from the
  network's own CPU generator (seeded by ``seed``, or from torch's global generator at
  construction), saved in ``state_dict`` as extra state: dropout is reproducible and resumable.
  Under DDP each process draws from its own stream (``seed_rank_stream``: seeded from (seed, rank),
  rank 0 keeping ``seed``); the strategy saves every process's stream and carried states.

Stateful truncated BPTT: outside ``net.carrying(stream)`` every forward starts from h_0 = 0 (the
contract's "one path == the stand-alone network"). Inside it, the forward starts from the state
carried for ``stream`` (``"weights"``, ``"arch"``, ``"val"``, ...) and stores its last hidden state,
detached, for the next window; ``reset_hidden`` forgets it. The carried states are part of
``state_dict`` (extra state), so a checkpoint taken mid-epoch resumes with them.

Initialisation: cell matrices uniform in [-init_range, init_range] (0.04: ENAS App. A for a fixed
architecture and DARTS' INITRANGE; ENAS searches with 0.025), embedding and untied decoder
uniform in [-0.1, 0.1], decoder bias 0 (DARTS / AWD-LSTM), from torch's global generator.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Literal, Mapping, Optional, Sequence

import torch
from torch import nn

from lightning_nas.nn.base import Active, SuperNet, passes_through
from lightning_nas.nn.rnn_regularisation import (activation_regularisation, dropout_mask, embedded_dropout,
                                                 locked_dropout, temporal_activation_regularisation)
from lightning_nas.registry import NETWORKS
from lightning_nas.seeding import rank_seed
from lightning_nas.spaces.darts_rnn import DartsRNNArchitecture, DartsRNNSpace, rnn_edges

ACTIVATION_FUNCTIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}
WeightSharing = Literal["edge", "node"]
BatchNormMode = Literal["none", "nodes", "output"]
OutputMode = Literal["mean", "loose_ends"]


class DartsRNNCell(nn.Module):
    """The recurrent cell; ``connections`` are the (node, predecessor) pairs whose matrices exist."""

    def __init__(self, input_size: int, hidden_size: int, num_nodes: int,
                 connections: Sequence[tuple[int, int]], weight_sharing: WeightSharing = "edge",
                 init_range: float = 0.04, batchnorm: BatchNormMode = "none", output: OutputMode = "mean") -> None:
        super().__init__()
        if weight_sharing not in ("edge", "node"):
            raise ValueError(f"model.network.weight_sharing must be 'edge' or 'node', got {weight_sharing!r}")
        if batchnorm not in ("none", "nodes", "output"):
            raise ValueError(f"model.network.batchnorm must be 'none', 'nodes' (DARTS search) or 'output' (ENAS "
                             f"search), got {batchnorm!r}")
        if output not in ("mean", "loose_ends"):
            raise ValueError(f"model.network.output must be 'mean' (DARTS) or 'loose_ends' (ENAS), got {output!r}")
        self.hidden_size, self.num_nodes, self.weight_sharing = hidden_size, num_nodes, weight_sharing
        self.batchnorm, self.output = batchnorm, output
        self.w0 = nn.Parameter(torch.empty(input_size + hidden_size, 2 * hidden_size).uniform_(-init_range, init_range))
        keys = dict.fromkeys(self.key(i, j) for i, j in connections)  # ordered, without repeats
        self.node_weights = nn.ParameterDict({
            key: nn.Parameter(torch.empty(hidden_size, 2 * hidden_size).uniform_(-init_range, init_range))
            for key in keys})
        # one BN for every place it is applied, as DARTS' search cell (running statistics shared)
        self.bn = nn.BatchNorm1d(hidden_size, affine=False) if batchnorm != "none" else None

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

    def _norm(self, s: torch.Tensor, where: str) -> torch.Tensor:
        return self.bn(s) if self.bn is not None and self.batchnorm == where else s

    def _run(self, x: torch.Tensor, step, outputs_of, h0: Optional[torch.Tensor], masks: Mapping[str, torch.Tensor]):
        """(B, T, E) inputs -> ((B, T, H) cell outputs, last hidden state). ``step(s0, h_mask)`` gives the
        intermediate states, ``outputs_of`` the indices (1-based) of those averaged into h_t."""
        batch, steps, inputs = x.shape
        if "x" in masks:
            x = x * masks["x"].unsqueeze(1)
        w_x, w_h = self.w0[:inputs], self.w0[inputs:]
        if "w_h" in masks:
            w_h = w_h * masks["w_h"]
        h_mask = masks.get("h")
        projected = x @ w_x  # the x_t part of W0 [x_t, h_{t-1}] for every t at once
        h = x.new_zeros(batch, self.hidden_size) if h0 is None else h0
        outputs = []
        for t in range(steps):
            h_in = h if h_mask is None else h * h_mask
            s0 = self._norm(self._highway(h, projected[:, t] + h_in @ w_h, torch.tanh), "nodes")
            states = step(s0, h_mask)
            chosen = [states[i - 1] for i in outputs_of]
            h = chosen[0] if len(chosen) == 1 else torch.stack(chosen, dim=0).mean(dim=0)
            h = self._norm(h, "output")
            outputs.append(h)
        return torch.stack(outputs, dim=1), h

    def forward(self, x: torch.Tensor, nodes: Sequence[tuple[str, int]], h0: Optional[torch.Tensor] = None,
                masks: Mapping[str, torch.Tensor] = {}):
        """One path: node i applies ``nodes[i-1] = (activation, predecessor)``."""
        if len(nodes) != self.num_nodes:
            raise ValueError(f"the architecture has {len(nodes)} nodes, this network {self.num_nodes} "
                             "(the network and the architecture must come from the same space)")
        matrices = [self.matrix(i, j) for i, (_, j) in enumerate(nodes, start=1)]
        functions = [ACTIVATION_FUNCTIONS[a] for a, _ in nodes]
        used = {j for _, j in nodes}
        outputs_of = (range(1, self.num_nodes + 1) if self.output == "mean"
                      else [i for i in range(1, self.num_nodes + 1) if i not in used])

        def step(s0: torch.Tensor, h_mask) -> list[torch.Tensor]:
            states = [s0]
            for (_, j), w, f in zip(nodes, matrices, functions, strict=True):
                inp = states[j] if h_mask is None else states[j] * h_mask
                states.append(self._norm(self._highway(states[j], inp @ w, f), "nodes"))
            return states[1:]

        return self._run(x, step, outputs_of, h0, masks)

    def forward_weighted(self, x: torch.Tensor, weights: torch.Tensor, operations: Sequence[str],
                         active: Active = None, h0: Optional[torch.Tensor] = None,
                         masks: Mapping[str, torch.Tensor] = {}):
        """DARTS' relaxation of the recurrent cell (Liu et al. 2019, Eq. 2 and App. A.1.2):
        s_i = sum_{j<i} sum_{o in active} weights[(i,j), o] * (s_j + c_ij * (o(h_ij) - s_j)), rows in
        ``rnn_edges`` order, ``none`` adding nothing; the weights are used as given (the strategy
        normalises them). ``output: loose_ends``: a node is a loose end when no edge leaving it
        carries a non-zero weight on an active activation (one-hot weights: the path's loose ends).

        Computed per node as DARTS' search cell does (``rnn/model_search.py``): the node's
        predecessors are stacked and go through one batched matrix product, then every activation
        runs once over the stack. With W_j = sum_o w_jo and the edge mixture
        sum_o w_jo (s_j + c_j (o(h_j) - s_j)) = W_j s_j + c_j (sum_o w_jo o(h_j) - W_j s_j),
        a node costs one product, one contraction over the activations and a few element-wise
        operations whatever its number of inputs: a fixed count of kernels per node instead of one
        product, one sigmoid and a mixture per edge. Numerically the mixture is summed in another
        order than the authors' loop (a few float32 ulps; tests/test_rnn_fused_cell.py states the
        tolerance). One-hot weights still give the path bit for bit: the batched product of each
        predecessor is the path's product (``bmm`` runs one GEMM per stacked input; node sharing
        expands its one matrix), and multiplying by exact 1 and 0 and adding zeros change nothing.
        GDAS' active options mask the weights; its straight-through constants (``passthrough``)
        are added once per node."""
        edges = rnn_edges(self.num_nodes)
        if tuple(weights.shape) != (len(edges), len(operations)):
            raise ValueError(f"mixture weights must have shape {(len(edges), len(operations))}, "
                             f"got {tuple(weights.shape)}")
        columns = [o for o, name in enumerate(operations) if name != "none"]
        functions = [ACTIVATION_FUNCTIONS[operations[o]] for o in columns]
        restricted = active is not None and "ops" in active.indices
        if restricted:
            chosen = torch.zeros(weights.shape, dtype=torch.bool, device=weights.device)
            chosen.scatter_(1, active.indices["ops"].to(weights.device).reshape(len(edges), -1), True)
        if self.output == "mean":
            outputs_of = list(range(1, self.num_nodes + 1))
        else:
            live = weights != 0
            if restricted:
                live = live & chosen
            used = {j for e, (_, j) in enumerate(edges) if bool(live[e, columns].any())}
            outputs_of = [i for i in range(1, self.num_nodes + 1) if i not in used]
        mixing = weights[:, columns] if columns else weights.new_zeros(len(edges), 0)
        if restricted:
            mixing = mixing * chosen[:, columns].to(weights.dtype)  # inactive options add nothing
        constants = None
        if passes_through(active, "ops"):  # GDAS reference: the inactive weights as constants, per edge
            constants = (weights * (~chosen).to(weights.dtype)).sum(dim=1)
        # per node, once per forward: its rows of the mixture, their sums, its stacked matrices
        plan, first = [], 0
        for i in range(1, self.num_nodes + 1):
            rows = slice(first, first + i)
            w = mixing[rows]
            if self.weight_sharing == "node":
                stacked = self.matrix(i, 0).expand(i, -1, -1)
            else:
                stacked = torch.stack([self.matrix(i, j) for j in range(i)])
            constant = None if constants is None else constants[rows].sum()
            plan.append((w.unsqueeze(1), w.sum(dim=1).view(i, 1, 1), stacked, constant))
            first += i

        def step(s0: torch.Tensor, h_mask) -> list[torch.Tensor]:
            states = [s0]
            for i, (w, total_weight, stacked, constant) in enumerate(plan, start=1):
                s = torch.stack(states)  # (i, B, H): the node's predecessors
                ch = torch.bmm(s if h_mask is None else s * h_mask, stacked)
                if not functions:  # only ``none``: the node is zero (plus GDAS' constants)
                    node = torch.zeros_like(s0) if constant is None else torch.zeros_like(s0) + constant
                    states.append(self._norm(node, "nodes"))
                    continue
                c, h = ch.chunk(2, dim=-1)
                c = torch.sigmoid(c)
                outs = torch.stack([f(h) for f in functions], dim=1)  # (i, K, B, H)
                mixed = torch.bmm(w, outs.view(i, len(functions), -1)).view_as(s)  # sum_o w_jo o(h_j)
                kept = total_weight * s  # W_j s_j
                node = (kept + c * (mixed - kept)).sum(dim=0)
                if constant is not None:
                    node = node + constant
                states.append(self._norm(node, "nodes"))
            return states[1:]

        return self._run(x, step, outputs_of, h0, masks)


@NETWORKS.register("darts_rnn")
class DartsRNNNetwork(SuperNet):
    """Recurrent language model; a super-net when ``arch`` is None, else the stand-alone net of ``arch``.

    Args:
        num_classes: the vocabulary size (linked from the DataModule). ``in_channels`` is ignored.
        embedding_size, hidden_size: 300 and 300 are DARTS' search sizes (850 for final training).
        space: the cell space (its ``num_nodes`` and operations); default DARTS' 8-node space,
            or the architecture's node count for a stand-alone network.
        num_nodes: only to build the space when ``space`` is not given (``DartsRNNSpace(num_nodes)``).
        weight_sharing: ``edge`` (ENAS, one matrix per connection) or ``node`` (DARTS, one per node).
        init_range: cell matrices ~ U(-r, r); 0.04 (fixed architectures), 0.025 (ENAS search).
        tie_weights: decoder weight = embedding (needs embedding_size == hidden_size).
        batchnorm: ``none``, ``nodes`` (DARTS search cell), ``output`` (ENAS search cell).
        output: ``mean`` of all nodes (DARTS) or of the ``loose_ends`` (ENAS).
        dropout, dropout_input, dropout_embedding, dropout_x, dropout_h, weight_drop: AWD-LSTM /
            DARTS regularisation (module docstring); DARTS search 0.75, 0.2, 0, 0.75, 0.25, 0;
            DARTS final training 0.75, 0.2, 0.1, 0.75, 0.25, 0 (``rnn/train_search.py``, ``train.py``).
        ar, tar: AWD-LSTM's alpha and beta (DARTS: 0 and 1e-3).
        seed: seeds the network's dropout generator; None draws it from torch's global generator
            at construction (so ``seed_everything`` fixes it).
    """

    input_kind = "tokens"
    output_modes = ("mean", "loose_ends")
    tiny_options = {"embedding_size": 8, "hidden_size": 8}

    def __init__(self, space: Optional[DartsRNNSpace] = None, num_classes: int = 10000, in_channels: int = 1,
                 embedding_size: int = 300, hidden_size: int = 300, arch: Optional[DartsRNNArchitecture] = None,
                 weight_sharing: WeightSharing = "edge", init_range: float = 0.04, tie_weights: bool = True,
                 batchnorm: BatchNormMode = "none", output: OutputMode = "mean", dropout: float = 0.0,
                 dropout_input: float = 0.0, dropout_embedding: float = 0.0, dropout_x: float = 0.0,
                 dropout_h: float = 0.0, weight_drop: float = 0.0, ar: float = 0.0, tar: float = 0.0,
                 seed: Optional[int] = None, num_nodes: Optional[int] = None) -> None:
        super().__init__()
        if space is None:
            nodes = num_nodes if num_nodes is not None else (arch.num_nodes if arch is not None else None)
            space = DartsRNNSpace(num_nodes=nodes) if nodes is not None else DartsRNNSpace()
        elif num_nodes is not None and num_nodes != space.num_nodes:
            raise ValueError(f"model.network.num_nodes={num_nodes} but the space has {space.num_nodes} nodes")
        self.space = space
        num_nodes = space.num_nodes
        if num_classes < 1 or embedding_size < 1 or hidden_size < 1 or num_nodes < 1:
            raise ValueError(f"DARTS RNN network needs positive sizes, got num_classes={num_classes}, "
                             f"embedding_size={embedding_size}, hidden_size={hidden_size}, num_nodes={num_nodes}")
        if arch is not None and arch.num_nodes != num_nodes:
            raise ValueError(f"the space has num_nodes={num_nodes} but the architecture {arch} has {arch.num_nodes}")
        if tie_weights and embedding_size != hidden_size:
            raise ValueError(f"model.network.tie_weights needs embedding_size == hidden_size, got {embedding_size} "
                             f"and {hidden_size}")
        self.rates = dict(dropout=dropout, dropout_input=dropout_input, dropout_embedding=dropout_embedding,
                          dropout_x=dropout_x, dropout_h=dropout_h, weight_drop=weight_drop)
        for key, value in self.rates.items():
            if not 0 <= value < 1:
                raise ValueError(f"model.network.{key} must be in [0, 1), got {value}")
        if ar < 0 or tar < 0:
            raise ValueError(f"model.network.ar and tar must be >= 0, got {ar} and {tar}")
        self.arch, self.operations, self.dropout = arch, space.operations, dropout
        self.ar, self.tar = ar, tar
        self.encoder = nn.Embedding(num_classes, embedding_size)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        connections = ([(i, j) for i, (_, j) in enumerate(arch.nodes, start=1)] if arch is not None
                       else list(rnn_edges(num_nodes)))
        self.cell = DartsRNNCell(embedding_size, hidden_size, num_nodes, connections, weight_sharing, init_range,
                                 batchnorm, output)
        self.decoder = nn.Linear(hidden_size, num_classes)
        nn.init.zeros_(self.decoder.bias)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        # the dropout generator: seeded after the parameters so that their initialisation is unchanged
        self.seed = int(seed) if seed is not None else int(torch.randint(2 ** 62, (1,)))
        self.config["seed"] = self.seed  # the drawn seed: a stand-alone copy draws the same masks from the same state
        self.dropout_generator = torch.Generator().manual_seed(self.seed)
        self.hidden: dict[str, torch.Tensor] = {}
        self._stream: Optional[str] = None
        self._storing, self._start_from_zero = True, False
        self._activations: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    # ------------------------------------------------------------------ state: hidden + generator
    def get_extra_state(self) -> dict[str, Any]:
        """Saved in ``state_dict`` under ``_extra_state``: the dropout generator and the carried states."""
        return {"dropout_generator": self.dropout_generator.get_state(),
                "hidden": {k: v.detach().cpu().clone() for k, v in self.hidden.items()}}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.dropout_generator.set_state(state["dropout_generator"])
        device = self.encoder.weight.device
        self.hidden = {k: v.to(device) for k, v in state.get("hidden", {}).items()}

    def seed_rank_stream(self, rank: int) -> None:
        self.dropout_generator.manual_seed(rank_seed(self.seed, rank))

    def rank_state(self) -> dict[str, Any]:
        return self.get_extra_state()

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self.set_extra_state(state)

    def noise_state(self) -> torch.Tensor:
        return self.dropout_generator.get_state()

    def set_noise_state(self, state: torch.Tensor) -> None:
        self.dropout_generator.set_state(state)

    @contextmanager
    def carrying(self, stream: str, reset: bool = False, store: bool = True) -> Iterator[None]:
        """Forwards inside start from ``stream``'s carried hidden state and store their last one
        (detached: truncated BPTT). ``reset``: start this window from zero (first window of an epoch).
        ``store=False``: every forward inside starts from the same state and the carried state is left
        as it was (the extra forwards of DARTS' second order on the weights' window)."""
        if reset and store:
            self.reset_hidden(stream)
        previous = self._stream, self._storing, self._start_from_zero
        self._stream, self._storing, self._start_from_zero = stream, store, reset and not store
        try:
            yield
        finally:
            self._stream, self._storing, self._start_from_zero = previous

    def reset_hidden(self, stream: Optional[str] = None) -> None:
        """Forget the carried state of ``stream`` (None: of every stream)."""
        if stream is None:
            self.hidden.clear()
        else:
            self.hidden.pop(stream, None)

    def _initial_hidden(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        if self._stream is None or self._start_from_zero:
            return None
        h = self.hidden.get(self._stream)
        if h is None:
            return None
        if h.shape != (x.shape[0], self.config["hidden_size"]):
            raise ValueError(f"the hidden state carried for {self._stream!r} has shape {tuple(h.shape)}, this window "
                             f"has {x.shape[0]} rows: reset it (carrying(..., reset=True)) when the batch size changes")
        return h.to(x.device)

    # ------------------------------------------------------------------ regularisation
    def _masks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The window's variational masks on the cell (training only), drawn in a fixed order."""
        if not self.training:
            return {}
        gen, masks = self.dropout_generator, {}
        ref = self.cell.w0
        batch = x.shape[0]
        if self.rates["dropout_x"]:
            masks["x"] = dropout_mask((batch, self.config["embedding_size"]), self.rates["dropout_x"], gen, ref)
        if self.rates["dropout_h"]:
            masks["h"] = dropout_mask((batch, self.config["hidden_size"]), self.rates["dropout_h"], gen, ref)
        if self.rates["weight_drop"]:
            h = self.config["hidden_size"]
            masks["w_h"] = dropout_mask((h, 2 * h), self.rates["weight_drop"], gen, ref)
        return masks

    def regularisation_loss(self) -> Optional[torch.Tensor]:
        """AR + TAR of the last training forward (AWD-LSTM): add it to the loss; None when both are
        off or the last forward was not a training one."""
        if self._activations is None:
            return None
        raw, dropped = self._activations
        return activation_regularisation(dropped, self.ar) + temporal_activation_regularisation(raw, self.tar)

    # ------------------------------------------------------------------ forward passes
    def _run(self, x: torch.Tensor, cell_forward) -> torch.Tensor:
        """(B, T) token ids -> (B*T, V) logits, row b*T + t predicting the token after x[b, t]."""
        if x.dim() != 2:
            raise ValueError(f"expected a (batch, time) tensor of token ids, got shape {tuple(x.shape)}")
        gen = self.dropout_generator if self.training else None
        emb = embedded_dropout(self.encoder.weight, x, self.rates["dropout_embedding"], gen)
        emb = locked_dropout(emb, self.rates["dropout_input"], gen)
        raw, last = cell_forward(emb, self._initial_hidden(x), self._masks(x))
        if self._stream is not None and self._storing:
            self.hidden[self._stream] = last.detach()
        outputs = locked_dropout(raw, self.dropout, gen)
        self._activations = (raw, outputs) if self.training and (self.ar or self.tar) else None
        return self.decoder(outputs.reshape(-1, outputs.shape[-1]))

    def forward(self, x: torch.Tensor, arch: Optional[DartsRNNArchitecture] = None) -> torch.Tensor:
        arch = self.path_architecture(arch)
        return self._run(x, lambda emb, h0, masks: self.cell(emb, arch.nodes, h0, masks))

    def forward_weighted(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor], active: Active = None) -> torch.Tensor:
        """Continuous relaxation: ``weights["ops"]`` has shape (len(rnn_edges(num_nodes)), len(operations)),
        columns in the space's ``operations`` order (``none`` first where the space has it)."""
        return self._run(x, lambda emb, h0, masks: self.cell.forward_weighted(emb, weights["ops"], self.operations,
                                                                                active, h0, masks))
