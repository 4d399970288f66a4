"""FairNAS with strict fairness (Chu et al., ICCV 2021, Sec. 3.2, Alg. 1).

Each step draws, for every edge, a random permutation of its m operations; model k takes the k-th
operation of every permutation, so the m single-path models together use every operation of
every edge exactly once. All m models see the same batch and their gradients are accumulated into
one optimiser update, which keeps every operation's parameters updated equally often.

Implementation choice: automatic optimisation with the summed loss (the sum of the m losses has
the accumulated gradient; the m graphs are alive together, which costs memory, not results).
"""
from __future__ import annotations

from typing import Hashable

import torch
import torch.nn.functional as F

from lightning_nas.strategies.base import SearchStrategy


class FairNAS(SearchStrategy):
    """Strict-fairness sampling; other defaults are those of ``SearchStrategy`` (SPOS' super-net
    settings), since FairNAS' own (lr 0.045, MobileNet space) do not transfer to NB201. The
    final architecture comes from the selection callback (``derive_architecture`` is None).
    """

    def fair_architectures(self) -> list[Hashable]:
        """m architectures that together hold each operation of each edge exactly once."""
        operations = getattr(self.space, "operations", None)
        edges = getattr(self.space, "edges", None)
        if operations is None or edges is None:
            raise ValueError(f"model.space: FairNAS needs a cell space with edges and operations, got {self.hparams.space}")
        perms = [torch.randperm(len(operations), generator=self.arch_generator) for _ in edges]
        archs = []
        for k in range(len(operations)):
            one_hot = torch.zeros(len(edges), len(operations))
            for e, perm in enumerate(perms):
                one_hot[e, int(perm[k])] = 1.0
            archs.append(self.space.decode(one_hot))
        return archs

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        x, y = batch["weights"]
        archs = self.fair_architectures()
        self.last_architectures = archs
        total = x.new_zeros(())
        correct = x.new_zeros(())
        for arch in archs:
            logits = self(x, arch)
            total = total + F.cross_entropy(logits, y)
            correct = correct + (logits.argmax(-1) == y).float().mean()
        self.log("train/loss", total / len(archs), prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/accuracy", correct / len(archs) * 100, prog_bar=True, on_step=False, on_epoch=True)
        return total
