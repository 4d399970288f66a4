"""NAO with weight sharing (NAO-WS): Luo et al., "Neural Architecture Optimization" (NeurIPS 2018,
Sec. 3 and 4.2 "NAO with weight sharing"), as Yu et al. (ICLR 2020, App. C.3) evaluate it.

The search keeps a pool of architectures (initially uniform draws from the space) and alternates:

1. the shared super-net is trained on architectures drawn uniformly from the pool, one per step
   (the authors' ``child_train`` with ``arch_pool_prob=None``);
2. every ``cycle_every`` epochs the pool is scored with the shared weights
   (``lightning_nas.scoring``: batch-statistics BN, on ``score_batches`` batches of the
   architecture split, the same batches for every architecture), the scores min-max normalised;
3. the encoder-predictor-decoder (``nao_model``) is trained on the scored pool (Eq. 1);
4. the embeddings of the ``top_architectures`` best move up the predictor's gradient,
   e' = e + eta * d f / d e (Eq. 3), with eta = 1, 2, ... (the authors' ``predict_step_size``) until
   ``new_architectures`` sequences not yet in the pool are decoded or eta passes ``max_step_size``;
5. the new architectures replace the lowest-scored ones, so the pool keeps its size (authors'
   ``train_search.py``: ``old_archs[:len(old_archs) - num_new_archs] + new_archs``).

The sequence is a space's decision picks (``nao_model.Tokens``), so NAO drives every space with
decisions. The decoder only emits the options of each position's decision, k distinct ones for a
choice of k picks; a decoded combination the space still rejects (``from_decisions`` raises
``ArchitectureError``: NAS-Bench-101's edge limit, an output disconnected from the input) is
discarded, and eta keeps rising, as the authors discard decoded sequences already in the pool.

The answer (``answer = "selection"``) is NAO-WS' final choice as Yu et al. take it, "the top-1 in
the NAO ranking": the pool is the candidate set (``candidate_architectures``), and the final
selection callback picks its best by shared-weight score on the validation split with the final
weights. (The authors then re-train the top 5 for 10 epochs each; that is stand-alone training
outside a weight-sharing search and is left out, as in Yu et al.)

Each cycle runs whole inside one training step (before its weight update), so a checkpoint never
holds half a cycle; the encoder-predictor-decoder's Adam is created afresh for every cycle, as the
authors' code does, and holds no state between cycles. What persists - the pool, its scores and the
encoder-predictor-decoder's weights - is in the checkpoint (the weights in the state dict, the pool in
``on_save_checkpoint``); every draw (pool sampling, mini-batch order, the predictor's dropout) comes
from the seeded architecture generator the base class saves. Under DDP every process computes the
same cycle; the scores are taken from rank 0 so that all agree bit for bit.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Hashable, Literal, Optional

import torch
from torch import nn

from lightning_nas.errors import ArchitectureError, RecipeError
from lightning_nas.registry import STRATEGIES
from lightning_nas.scoring import Score, score_architectures
from lightning_nas.seeding import derive_seed
from lightning_nas.spaces.decisions import Picks
from lightning_nas.strategies import settings
from lightning_nas.strategies.base import Batch, SearchStrategy
from lightning_nas.strategies.nao_model import EncoderPredictorDecoder


class _Batches(list):
    """Scoring batches; ``stateful`` marks consecutive language-model windows (``scoring.score``)."""

    stateful: bool = False


@STRATEGIES.register("nao")
class NAO(SearchStrategy):
    """Args (defaults: the authors' NAO-WS search on CIFAR-10, ``NAO_V1/train_search.py`` of
    renqianluo/NAO_pytorch, argument defaults; the paper's Sec. 4.2 where it states them):
        seed_architectures: initial pool size, uniform draws without repeats (600,
            ``--controller_seed_arch``; all of the space where it is smaller).
        cycle_every: epochs of weight training between pool updates (30, ``--child_eval_epochs``).
        cycle_unit: ``epoch`` (the authors') or ``step`` (training steps; tiny runs and tests).
        score_batches: architecture-split batches each pool member is scored on (1: one batch of
            ``child_eval_batch_size`` per architecture, ``child_valid``).
        score: what the pool is ranked by, validation ``accuracy`` (authors) or ``loss`` (negated).
        hidden, layers: encoder and decoder LSTM width and depth (96, 1; ``--controller_encoder_*``).
        mlp_hidden, mlp_layers, mlp_dropout: the predictor (200, 3, 0.1; ``--controller_mlp_*``).
        trade_off: lambda of Eq. 1 (0.8, ``--controller_trade_off``).
        epd_epochs, epd_batch_size: encoder-predictor-decoder training per cycle (1000 epochs of
            batch 100, ``--controller_epochs``, ``--controller_batch_size``).
        epd_lr, epd_weight_decay, epd_grad_clip: its Adam (1e-3, 1e-4 L2, clip 5; ``--controller_lr``,
            ``--controller_l2_reg``, ``--controller_grad_bound``).
        top_architectures: best pool members whose embeddings are moved (100, ``top100_archs``).
        new_architectures: new architectures per cycle (300, ``--controller_new_arch``).
        max_step_size: largest eta tried, in steps of 1 (50, ``max_step_size``).
        Everything else as ``SearchStrategy`` (the weight optimiser, the space, the seed).
    """

    #: held-out training data scores the pool: the authors split CIFAR-10's training images 9:1
    #: (``build_cifar10(ratio=0.9)``), scoring on the tenth
    data_needs = MappingProxyType({"arch_split": 0.1})
    #: a cycle every 2 steps on a pool of 6, with a small encoder-predictor-decoder: the registry tests'
    #: few steps score, train, move embeddings and replace pool members
    test_options = {"seed_architectures": 6, "cycle_every": 2, "cycle_unit": "step", "hidden": 8, "mlp_hidden": 8,
                    "mlp_layers": 1, "epd_epochs": 3, "epd_batch_size": 4, "top_architectures": 3,
                    "new_architectures": 2, "max_step_size": 4}

    def __init__(self, seed_architectures: int = 600, cycle_every: int = 30,
                 cycle_unit: Literal["epoch", "step"] = "epoch", score_batches: int = 1,
                 score: Literal["accuracy", "loss"] = "accuracy", hidden: int = 96, layers: int = 1,
                 mlp_hidden: int = 200, mlp_layers: int = 3, mlp_dropout: float = 0.1, trade_off: float = 0.8,
                 epd_epochs: int = 1000, epd_batch_size: int = 100, epd_lr: float = 1e-3,
                 epd_weight_decay: float = 1e-4, epd_grad_clip: float = 5.0, top_architectures: int = 100,
                 new_architectures: int = 300, max_step_size: int = 50, **kwargs: Any) -> None:
        for key, value in (("seed_architectures", seed_architectures), ("cycle_every", cycle_every),
                           ("score_batches", score_batches), ("hidden", hidden), ("layers", layers),
                           ("mlp_hidden", mlp_hidden), ("epd_batch_size", epd_batch_size),
                           ("top_architectures", top_architectures), ("max_step_size", max_step_size)):
            if value < 1:
                raise RecipeError(f"model.{key} must be >= 1, got {value}")
        for key, value in (("mlp_layers", mlp_layers), ("epd_epochs", epd_epochs),
                           ("new_architectures", new_architectures)):
            if value < 0:
                raise RecipeError(f"model.{key} must be >= 0, got {value}")
        if not 0 <= trade_off <= 1:
            raise RecipeError(f"model.trade_off must be in [0, 1], got {trade_off}")
        if not 0 <= mlp_dropout < 1:
            raise RecipeError(f"model.mlp_dropout must be in [0, 1), got {mlp_dropout}")
        if cycle_unit not in ("epoch", "step"):
            raise RecipeError(f"model.cycle_unit must be 'epoch' or 'step', got {cycle_unit!r}")
        if score not in ("accuracy", "loss"):
            raise RecipeError(f"model.score must be 'accuracy' or 'loss', got {score!r}")
        super().__init__(**kwargs)
        self.cycle_every, self.cycle_unit, self.score_batches, self.score_by = cycle_every, cycle_unit, score_batches, score
        self.trade_off, self.epd_epochs, self.epd_batch_size = trade_off, epd_epochs, epd_batch_size
        self.epd_lr, self.epd_weight_decay, self.epd_grad_clip = epd_lr, epd_weight_decay, epd_grad_clip
        self.top_architectures, self.new_architectures, self.max_step_size = top_architectures, new_architectures, max_step_size
        with torch.random.fork_rng(devices=[]):  # PyTorch's own initialisation, seeded by the run seed alone
            torch.manual_seed(derive_seed(self.hparams.seed, "nao-init"))
            self.epd = EncoderPredictorDecoder(self.space.decisions, hidden, layers, mlp_hidden, mlp_layers, mlp_dropout)
        count = min(seed_architectures, self.space.size)
        #: the pool: picks of each member, and its last shared-weight score (None: not scored yet)
        self.pool: list[Picks] = [self.space.to_decisions(a) for a in self.space.sample_many(count, self.arch_generator)]
        self.pool_scores: list[Optional[float]] = [None] * len(self.pool)

    # ------------------------------------------------------------------ the pool as the policy
    def sample_architecture(self) -> Hashable:
        """A pool member, uniformly (authors' ``utils.sample_arch`` without probabilities)."""
        index = int(torch.randint(len(self.pool), (1,), generator=self.arch_generator))
        return self.space.from_decisions(self.pool[index])

    def candidate_architectures(self, count: int, gen: torch.Generator) -> list[Hashable]:
        """The pool, best-scored first (new members after those scored): the final selection scores
        these with the final shared weights and answers the best (the top-1 of NAO's ranking)."""
        return [self.space.from_decisions(p) for p in self._ranked()[:count]]

    def architecture_parameters(self) -> list[nn.Parameter]:
        return list(self.epd.parameters())

    def _ranked(self) -> list[Picks]:
        order = sorted(range(len(self.pool)),
                       key=lambda i: (self.pool_scores[i] is None, -(self.pool_scores[i] or 0.0), i))
        return [self.pool[i] for i in order]

    # ------------------------------------------------------------------ the loop
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        if self._cycle_due(batch_idx):
            with torch.autocast(device_type=self.device.type, enabled=False):  # the small LSTMs run in float32
                self.cycle(self._scoring_batches(batch))
        return super().training_step(batch, batch_idx)

    def _cycle_due(self, batch_idx: int) -> bool:
        if self.cycle_unit == "step":
            return self.global_step > 0 and self.global_step % self.cycle_every == 0
        return batch_idx == 0 and self.current_epoch > 0 and self.current_epoch % self.cycle_every == 0

    def _scoring_batches(self, batch: Batch) -> _Batches:
        """``score_batches`` architecture-split batches in fixed order (the DataModule's), or this
        step's architecture batch where no DataModule serves them (a bare DataLoader)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "split_batches"):
            batches = _Batches(datamodule.split_batches("arch", self.device, limit=self.score_batches))
            batches.stateful = bool(getattr(datamodule, "stateful", False))
            return batches
        return _Batches([batch.get("arch", batch["weights"])])

    def cycle(self, batches: list) -> dict[str, float]:
        """Score the pool, train the encoder-predictor-decoder, replace the worst by new architectures."""
        archs = [self.space.from_decisions(p) for p in self.pool]
        scores = [s.goodness(self.score_by) for s in self._agreed(score_architectures(self, archs, batches))]
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        self.pool = [self.pool[i] for i in order]
        self.pool_scores = [scores[i] for i in order]
        stats = self.train_epd(self.pool, normalised(self.pool_scores))
        new = self.propose(self.pool[:self.top_architectures], self.new_architectures) if self._room() else []
        keep = len(self.pool) - len(new)
        self.pool = self.pool[:keep] + new
        self.pool_scores = self.pool_scores[:keep] + [None] * len(new)
        stats.update(new_architectures=float(len(new)), pool_best=self.pool_scores[0] or 0.0)
        for key, value in stats.items():
            self.log_train(f"nao/{key}", value)
        return stats

    def _agreed(self, scores: list[Score]) -> list[Score]:
        """Rank 0's scores on every process (each scored the same batches; this makes them bit-equal)."""
        if self._trainer is None or self.trainer.world_size <= 1:
            return scores
        return self.trainer.strategy.broadcast(scores, src=0)

    def _room(self) -> bool:
        """False where the pool already holds the whole space: nothing new can be decoded."""
        return self.new_architectures > 0 and len(self.pool) < self.space.size

    def train_epd(self, pool: list[Picks], targets: list[float]) -> dict[str, float]:
        """``epd_epochs`` passes of shuffled mini-batches of Eq. 1, with a fresh Adam (authors' ``nao_train``).
        Gradients are taken with ``torch.autograd.grad`` (never ``backward``): inside a DDP step the
        super-net's gradient hooks must not see them."""
        epd = self.epd
        tokens = epd.tokens.encode(pool).to(self.device)
        target = torch.tensor(targets, dtype=torch.float32, device=self.device)
        parameters = list(epd.parameters())
        optimizer = torch.optim.Adam(parameters, lr=self.epd_lr, weight_decay=self.epd_weight_decay,
                                     foreach=settings.FOREACH)
        losses = None
        epd.train()
        for _ in range(self.epd_epochs):
            order = torch.randperm(len(pool), generator=self.arch_generator).to(self.device)
            for start in range(0, len(pool), self.epd_batch_size):
                rows = order[start:start + self.epd_batch_size]
                losses = epd.loss(tokens[rows], target[rows], self.trade_off, self.arch_generator)
                grads = torch.autograd.grad(losses.total, parameters, allow_unused=True)
                for p, g in zip(parameters, grads, strict=True):
                    p.grad = torch.zeros_like(p) if g is None else g
                if self.epd_grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(parameters, self.epd_grad_clip)
                optimizer.step()
        for p in parameters:  # nothing for a later (DDP) backward to find
            p.grad = None
        if losses is None:
            return {}
        return {"loss": float(losses.total.detach()), "mse": float(losses.mse.detach()), "nll": float(losses.nll.detach())}

    def propose(self, top: list[Picks], count: int) -> list[Picks]:
        """Up to ``count`` new valid architectures decoded from ``top``'s embeddings moved by eta = 1, 2,
        ... ``max_step_size`` (authors' loop in ``train_search.py``); invalid combinations are discarded."""
        self.epd.eval()
        tokens = self.epd.tokens.encode(top).to(self.device)
        known = set(self.pool)
        new: list[Picks] = []
        for eta in range(1, self.max_step_size + 1):
            decoded, _, _ = self.epd.improve(tokens, float(eta))
            for picks in self.epd.tokens.decode(decoded.cpu()):
                if picks in known or not self._valid(picks):
                    continue
                known.add(picks)
                new.append(picks)
                if len(new) >= count:
                    return new
        return new

    def _valid(self, picks: Picks) -> bool:
        try:
            self.space.from_decisions(picks)
        except ArchitectureError:
            return False
        return True

    # ------------------------------------------------------------------ exact resumption
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["nao_pool"] = {"pool": [[list(c) for c in p] for p in self.pool], "scores": list(self.pool_scores)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("nao_pool")
        if saved is not None:
            self.pool = [tuple(tuple(c) for c in p) for p in saved["pool"]]
            self.pool_scores = list(saved["scores"])


def normalised(scores: list[Optional[float]]) -> list[float]:
    """Min-max normalisation to [0, 1], the predictor's targets (authors: (s - min) / (max - min));
    0.5 for every member where all scores are equal. Non-finite scores (a diverged loss) count as the minimum."""
    finite = [s for s in scores if s is not None and abs(s) != float("inf") and s == s]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    values = [s if s is not None and s in finite else low for s in scores]
    if high == low:
        return [0.5] * len(values)
    return [(v - low) / (high - low) for v in values]
