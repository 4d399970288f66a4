"""Random search with weight sharing: single-path one-shot (SPOS, Guo et al. 2020) / RandomNAS
(Li & Talwalkar 2019).

Each training step draws one architecture (from the seeded architecture generator) and updates only
the weights on that path. By default every decision of the space is drawn uniformly (Random-NAS);
``sampling: architectures`` draws every valid architecture equally often instead (Random-A of Yu et
al., "How to Train Your Super-Net", Table 1; see ``lightning_nas.strategies.sampling``). The search
itself happens after training: the final selection callback scores sampled architectures with the
shared weights. This is the reference every other strategy is compared with; the base class
already does the rest.
"""
from __future__ import annotations

from typing import Any, Hashable

from lightning_nas.registry import STRATEGIES
from lightning_nas.strategies.base import SearchStrategy
from lightning_nas.strategies.sampling import ArchitectureSampler, Sampling


@STRATEGIES.register("spos")
class SPOS(SearchStrategy):
    """Args:
        sampling: ``per_decision`` (default: SPOS/Random-NAS as published, uniform picks per
            decision) or ``architectures`` (Random-A: each valid architecture, one benchmark key,
            equally likely; Yu et al., Table 1).
        max_enumerate: the most decided architectures ``architectures`` lists for a space whose
            benchmark key merges several decision combinations (NB101, NAS-Bench-1Shot1); a cost
            bound chosen here (listing and hashing happen once, at construction), not a paper's value.
        Other defaults are those of ``SearchStrategy``.
    """

    def __init__(self, sampling: Sampling = "per_decision", max_enumerate: int = 100_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sampler = ArchitectureSampler(self.space, sampling, max_enumerate)

    def sample_architecture(self) -> Hashable:
        """The architecture trained in this step, by the recipe's sampling rule."""
        return self.sampler(self.arch_generator)
