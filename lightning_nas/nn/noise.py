"""Path and global dropout for super-net training, with masks from the network's own seeded stream.

Two factors of Yu et al., "How to Train Your Super-Net" (Table 1, "Dropout"; Sec. 3.1 citing Pham
et al. 2018, Luo et al. 2018, Liu et al. 2019b):

- path dropout: each edge's output is zeroed for a whole sample with probability p and the kept
  ones scaled by 1/(1-p) (drop-path, Larsson et al. 2017, as DARTS and NASNet use it);
- global dropout: ordinary dropout on the pooled features before the classifier (ENAS, NAO).

Masks never come from torch's global generator: a ``NoiseStream`` submodule owns a CPU generator,
seeded once (the network's ``seed``, drawn from the seeded global generator where the recipe gives
none, as the RNN's dropout seed is), saved in the state dict as extra state and given its own
stream per DDP process (``seeding.rank_seed``), so a run and its resumed copy draw the same masks.
The submodule exists only where a rate is above 0: networks without dropout keep their state-dict
keys and their initialisation.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from lightning_nas.nn.rnn_regularisation import dropout_mask
from lightning_nas.seeding import rank_seed


def check_rate(name: str, p: float) -> float:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"model.network.{name} must be in [0, 1), got {p}")
    return float(p)


class NoiseStream(nn.Module):
    """The dropout generator of one network (state in ``state_dict``; one stream per DDP process)."""

    def __init__(self, seed: Optional[int]) -> None:
        super().__init__()
        self.seed = int(seed) if seed is not None else int(torch.randint(2 ** 62, (1,)))
        self.generator = torch.Generator().manual_seed(self.seed)

    def get_extra_state(self) -> Any:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: Any) -> None:
        self.generator.set_state(state["generator"])

    def seed_rank(self, rank: int) -> None:
        self.generator.manual_seed(rank_seed(self.seed, rank))

    def drop_path(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """``x`` with whole samples zeroed with probability ``p`` (the rest scaled by 1/(1-p))."""
        if p <= 0.0 or x.dim() == 0:  # a 0-dim edge value is a constant (an inactive weight), not a path
            return x
        return x * dropout_mask((x.shape[0],) + (1,) * (x.dim() - 1), p, self.generator, x)

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Element-wise dropout of ``x`` (inverted: kept units scaled by 1/(1-p))."""
        return x if p <= 0.0 else x * dropout_mask(tuple(x.shape), p, self.generator, x)
