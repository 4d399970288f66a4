"""PC-DARTS' partial channel connections computed a node at a time, in two products per node.

PC-DARTS (Xu et al. 2020, Eq. 2 and 4) defines node j as ``sum_i beta_ij * shuffle(cat(mixed_ij,
bypass_i))``: the first C/K channels of source i go through the mixed operation, the other channels
bypass it, a channel shuffle with K groups interleaves the two, and the edge weight beta scales the
whole output (the authors' ``weights2[j] * MixedOp(h)``). The shuffle puts channel c of group g at
position ``c * K + g``, and everything after the operations is linear, so for a node with terms
(the active operations' outputs ``o_t``, each already at C/K channels) and sources s

    node[:, c * K + 0] = sum_t w_t o_t[:, c] (+ GDAS' constant)
    node[:, c * K + g] = sum_s beta_s bypass_s[:, (g - 1) * C/K + c]      (g = 1 .. K-1)

which is one (K x n) matrix applied to the n pieces of size C/K stacked as (B, n, C/K, H, W): one
concatenation, one batched product and one copy (the shuffle) give the node, instead of a
contraction of the operations, a contraction of the bypasses and a stack for the shuffle. The
matrices of all nodes of a cell type come from one index into the weights per forward. The edges
of a node that apply the same operation run as one kernel (``operation_outputs``,
``lightning_nas.nn.grouped``); a single edge on its own is ``partial_mix``.
"""
from __future__ import annotations

from typing import Callable, Hashable, Optional, Sequence

import torch
from torch import nn

from lightning_nas.nn.base import mix
from lightning_nas.nn.grouped import chain_signature, chains, run_chains

#: one term of a node: (edge, source node, operation key)
Term = tuple[int, int, str]


def split_source(h: torch.Tensor, k: int, pool: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A source node once for all its edges: the operations' input (its first C/K channels) and the
    bypassed channels as (B, K - 1, C/K, H, W) groups, both views of one split (one gradient
    concatenation). ``pool``: the bypass max-pooled 2x2 (edges whose operations have stride 2, as the
    authors' reduction cells)."""
    batch, channels = h.shape[:2]
    part = channels // k
    if pool:
        inside, rest = h.split([part, channels - part], dim=1)
        rest = nn.functional.max_pool2d(rest, 2, 2)
        return inside, rest.view(batch, k - 1, part, *rest.shape[2:])
    inside, rest = h.view(batch, k, part, *h.shape[2:]).split([1, k - 1], dim=1)
    return inside.squeeze(1), rest


def node_matrices(k: int, terms: Sequence[Sequence[int]], sources: Sequence[Sequence[int]],
                  term_weights: Optional[torch.Tensor], edge_weights: Optional[torch.Tensor],
                  constants: Optional[torch.Tensor], like: torch.Tensor) -> list[torch.Tensor]:
    """Per node the (K x n) matrix of ``assemble``: node j's operation outputs have the weights
    ``term_weights.flatten()[terms[j]]`` (in the order of its pieces), its bypass comes from the
    edges ``sources[j]`` (indices into ``edge_weights``; None: weight 1), then a column for GDAS'
    constant ``constants[j]`` where ``constants`` is given. One concatenation and one index build all
    (the operation weights are indexed where they lie, with no index of their own)."""
    parts = [] if term_weights is None else [term_weights.reshape(-1)]
    total = 0 if term_weights is None else parts[0].shape[0]
    parts.append(edge_weights if edge_weights is not None else like.new_ones(1))
    beta_at = (lambda e: total + e) if edge_weights is not None else (lambda e: total)
    const_at = total + (edge_weights.shape[0] if edge_weights is not None else 1)
    if constants is not None:
        parts.append(constants)
    zero = const_at + (constants.shape[0] if constants is not None else 0)
    parts.append(like.new_zeros(1))
    values = torch.cat([p.to(like.dtype) for p in parts])
    index, sizes = [], []
    for j, (columns, edges) in enumerate(zip(terms, sources, strict=True)):
        count = len(columns)
        n = count + len(edges) * (k - 1) + (constants is not None)
        rows = [[zero] * n for _ in range(k)]
        rows[0][:count] = columns
        for s, e in enumerate(edges):
            for g in range(1, k):
                rows[g][count + s * (k - 1) + g - 1] = beta_at(e)
        if constants is not None:
            rows[0][n - 1] = const_at + j
        index.extend(i for row in rows for i in row)
        sizes.append(n)
    flat = values[torch.tensor(index, device=values.device)]
    return [m.view(k, n) for m, n in zip(flat.split([k * n for n in sizes]), sizes, strict=True)]


def assemble(matrix: torch.Tensor, outputs: Sequence[torch.Tensor], bypasses: Sequence[torch.Tensor],
             constant: bool = False) -> torch.Tensor:
    """The node, shuffled: ``matrix`` (K x n, from ``node_matrices``) applied to the operation outputs
    (B, C/K, H, W each, or (B, m, C/K, H, W) for m of them from ``operation_outputs``), the sources'
    bypass groups (B, K - 1, C/K, H, W, from ``split_source``) and, with ``constant``, a piece of ones
    carrying GDAS' constant: one concatenation of the pieces (B, n, C/K, H, W), one product giving
    the K groups (B, K, C/K, H, W), and the shuffle as one copy into (B, C/K, K, H, W). Pieces are
    stacked group-major so that every piece, and its gradient, is a plain slice of the stack (the
    grouped operations' outputs are group-major already)."""
    ref = bypasses[0]
    batch, part, spatial = ref.shape[0], ref.shape[2], ref.shape[3:]
    pieces = [o.unsqueeze(1) if o.dim() == ref.dim() - 1 else o for o in outputs] + list(bypasses)
    if constant:
        pieces.append(ref.new_ones(batch, 1, part, *spatial))
    stacked = torch.cat(pieces, dim=1)
    k, n = matrix.shape
    groups = torch.bmm(matrix.to(stacked.dtype).expand(batch, k, n), stacked.reshape(batch, n, -1))
    return _Shuffle.apply(groups, part).view(batch, part * k, *spatial)


class _Shuffle(torch.autograd.Function):
    """(B, K, C/K * S) -> (B, C/K, K, S): the channel shuffle as one copy each way (a view and a
    ``contiguous`` would copy twice in the backward, the reshape of a transposed gradient)."""

    @staticmethod
    def forward(ctx, groups: torch.Tensor, part: int) -> torch.Tensor:
        batch, k, length = groups.shape
        ctx.shape = groups.shape
        return groups.view(batch, k, part, length // part).transpose(1, 2).contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.transpose(1, 2).contiguous().view(ctx.shape), None


def operation_outputs(terms: Sequence[Term], module: Callable[[int, str], Optional[nn.Module]],
                      run: Callable[[int, int, str], torch.Tensor], source: Callable[[int], torch.Tensor],
                      cache: dict[Hashable, object], grouped: bool = True) -> list[torch.Tensor]:
    """A node's operation outputs in ``terms`` order, as pieces for ``assemble``: consecutive terms
    whose modules (``module(edge, key)``; None: not groupable) form the same chain run as one
    (``lightning_nas.nn.grouped``) on their sources' partial inputs (``source(src)``) concatenated,
    giving one (B, m, C/K, H, W) piece; the others run one by one (``run(edge, src, key)``). The plans
    order a node's terms operation by operation so that the edges of one operation are consecutive.
    ``cache`` keeps the concatenated inputs and their leading ReLU or pooling for the whole cell."""
    pieces: list[torch.Tensor] = []
    signatures = [chain_signature(module(e, key)) if grouped else None for e, _, key in terms]
    i = 0
    while i < len(terms):
        j = i + 1
        while (signatures[i] is not None and j < len(terms) and terms[j][2] == terms[i][2]
               and signatures[j] == signatures[i]):
            j += 1
        stages = chains([module(e, key) for e, _, key in terms[i:j]]) if j - i > 1 else None
        if stages is None:
            pieces += [run(*terms[t]) for t in range(i, j)]
        else:
            sources = tuple(src for _, src, _ in terms[i:j])
            if ("inputs", sources) not in cache:
                cache[("inputs", sources)] = torch.cat([source(src) for src in sources], dim=1)
            out = run_chains(stages, cache[("inputs", sources)], cache)
            pieces.append(out.unflatten(1, (j - i, out.shape[1] // (j - i))))
        i = j
    return pieces


def partial_mix(x: torch.Tensor, k: int, weights: torch.Tensor, options: Sequence[int],
                run: Callable[[int, torch.Tensor], Optional[torch.Tensor]], passthrough: bool = False) -> torch.Tensor:
    """One partial-channel edge on its own (Xu et al. 2020, Eq. 2): ``shuffle(cat(mixed, bypass), K)``
    with ``mixed = sum_o weights[o] * run(o, x[:, :C/K])`` over ``options`` (``base.mix``: None from
    ``run`` adds nothing; ``passthrough`` adds the inactive weights as GDAS' constant, broadcast over
    the mixed channels when nothing ran) and the other channels bypassing it, max-pooled 2x2 when the
    operations halve the resolution. The single-edge node of ``assemble``: NAS-Bench-1Shot1's blocks
    and the per-edge references of the tests use the cells' own code."""
    inside, bypass = split_source(x, k)
    outputs, chosen = [], []
    for o in options:  # ``mix``'s loop, its contraction left to ``assemble``
        out = run(int(o), inside)
        if out is not None:
            outputs.append(out)
            chosen.append(int(o))
    # GDAS' constant: ``mix``'s passthrough term alone (the inactive weights' sum; None if there are none)
    rest = mix(weights, options, lambda o: None, passthrough) if passthrough else None
    if outputs and outputs[0].shape[2:] != bypass.shape[3:]:
        _, bypass = split_source(x, k, pool=True)
    matrix, = node_matrices(k, [chosen], [[0]], weights, None, rest.reshape(1) if rest is not None else None,
                            like=weights)
    return assemble(matrix, outputs, [bypass], rest is not None)
