"""PC-DARTS' partial channel connections computed a node at a time, in two products per node.

PC-DARTS (Xu et al. 2020, Eq. 2 and 4) defines node j as ``sum_i beta_ij * shuffle(cat(mixed_ij,
bypass_i))``: the first C/K channels of source i go through the mixed operation, the other channels
bypass it, a channel shuffle with K groups interleaves the two, and the edge weight beta scales the
whole output (the authors' ``weights2[j] * MixedOp(h)``). The shuffle puts channel c of group g at
position ``c * K + g``, and everything after the operations is linear, so for a node with terms
(the active operations' outputs ``o_t``, each already at C/K channels) and sources s

    node[:, c * K + 0] = sum_t w_t o_t[:, c] (+ GDAS' constant)
    node[:, c * K + g] = sum_s beta_s bypass_s[:, (g - 1) * C/K + c]      (g = 1 .. K-1)

which is one (K x n) matrix applied to the n pieces of size C/K stacked in the channel-major layout
(B, C/K, n, H, W): one concatenation and one batched product give the node already shuffled, instead
of a contraction of the operations, a contraction of the bypasses and a stack for the shuffle. The
matrices of all nodes of a cell type come from one index into the weights per forward.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn


def split_source(h: torch.Tensor, k: int, pool: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A source node once for all its edges: the operations' input (its first C/K channels) and the
    bypassed channels as (B, C/K, K - 1, H, W) groups, both views of one split (one gradient
    concatenation). ``pool``: the bypass max-pooled 2x2 (edges whose operations have stride 2, as the
    authors' reduction cells)."""
    batch, channels = h.shape[:2]
    part = channels // k
    if pool:
        inside, rest = h.split([part, channels - part], dim=1)
        rest = nn.functional.max_pool2d(rest, 2, 2)
        return inside, rest.view(batch, k - 1, part, *rest.shape[2:]).transpose(1, 2)
    inside, rest = h.view(batch, k, part, *h.shape[2:]).split([1, k - 1], dim=1)
    return inside.squeeze(1), rest.transpose(1, 2)


def node_matrices(k: int, terms: Sequence[int], sources: Sequence[Sequence[int]], term_weights: Optional[torch.Tensor],
                  edge_weights: Optional[torch.Tensor], constants: Optional[torch.Tensor],
                  like: torch.Tensor) -> list[torch.Tensor]:
    """Per node the (K x n) matrix of ``assemble``: node j has ``terms[j]`` operation outputs (their
    weights the next ``terms[j]`` entries of ``term_weights``, node after node) and its bypass from
    the edges ``sources[j]`` (indices into ``edge_weights``; None: weight 1), then a column for GDAS'
    constant ``constants[j]`` where ``constants`` is given. One concatenation and one index build all."""
    parts = [] if term_weights is None else [term_weights.reshape(-1)]
    total = sum(terms)
    parts.append(edge_weights if edge_weights is not None else like.new_ones(1))
    beta_at = (lambda e: total + e) if edge_weights is not None else (lambda e: total)
    const_at = total + (edge_weights.shape[0] if edge_weights is not None else 1)
    if constants is not None:
        parts.append(constants)
    zero = const_at + (constants.shape[0] if constants is not None else 0)
    parts.append(like.new_zeros(1))
    values = torch.cat([p.to(like.dtype) for p in parts])
    index, sizes, start = [], [], 0
    for j, (count, edges) in enumerate(zip(terms, sources, strict=True)):
        n = count + len(edges) * (k - 1) + (constants is not None)
        rows = [[zero] * n for _ in range(k)]
        rows[0][:count] = range(start, start + count)
        for s, e in enumerate(edges):
            for g in range(1, k):
                rows[g][count + s * (k - 1) + g - 1] = beta_at(e)
        if constants is not None:
            rows[0][n - 1] = const_at + j
        index.extend(i for row in rows for i in row)
        sizes.append(n)
        start += count
    flat = values[torch.tensor(index, device=values.device)]
    return [m.view(k, n) for m, n in zip(flat.split([k * n for n in sizes]), sizes, strict=True)]


def assemble(matrix: torch.Tensor, outputs: Sequence[torch.Tensor], bypasses: Sequence[torch.Tensor],
             constant: bool = False) -> torch.Tensor:
    """The node, already shuffled: ``matrix`` (K x n, from ``node_matrices``) applied to the operation
    outputs (B, C/K, H, W), the sources' bypass groups (B, C/K, K - 1, H, W, from ``split_source``)
    and, with ``constant``, a piece of ones carrying GDAS' constant; one concatenation, one product."""
    ref = bypasses[0]
    batch, part, spatial = ref.shape[0], ref.shape[1], ref.shape[3:]
    pieces = [o.unsqueeze(2) for o in outputs] + list(bypasses)
    if constant:
        pieces.append(ref.new_ones(batch, part, 1, *spatial))
    stacked = torch.cat(pieces, dim=2)
    k, n = matrix.shape
    out = torch.bmm(matrix.to(stacked.dtype).expand(batch * part, k, n), stacked.reshape(batch * part, n, -1))
    return out.view(batch, part * k, *spatial)
