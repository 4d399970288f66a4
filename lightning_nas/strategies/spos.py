"""Random search with weight sharing: single-path one-shot (SPOS, Guo et al. 2020) / RandomNAS
(Li & Talwalkar 2019).

Each training step draws one architecture uniformly (every decision of the space, from the
seeded architecture generator) and updates only the weights on that path. The search itself
happens after training: the final selection callback scores sampled architectures with the
shared weights. This is the reference every other strategy is compared with; the base class
already does all of it.
"""
from __future__ import annotations

from lightning_nas.registry import STRATEGIES
from lightning_nas.strategies.base import SearchStrategy


@STRATEGIES.register("spos")
class SPOS(SearchStrategy):
    """Uniform single-path sampling; defaults are those of ``SearchStrategy``."""
