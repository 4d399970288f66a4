"""ENAS: efficient neural architecture search via parameter sharing (Pham et al., ICML 2018).

An LSTM controller samples one operation per edge autoregressively (Sec. 2.3); the shared weights
are trained on the sampled architectures, the controller with REINFORCE on the validation reward
R = accuracy of the sampled architecture on an architecture-split batch, with a moving-average
baseline b <- decay * b + (1 - decay) * R and an entropy bonus (Sec. 2.2):

    loss_controller = -(R - b) * log pi(arch) - entropy_weight * H(pi)

ENAS alternates a whole epoch of weight training with a phase of controller steps; here the two
are interleaved every step (one weight step, one controller step), which keeps each step the same
for Lightning's loop and for resumption. All controller sampling draws from the seeded
architecture generator (saved in checkpoints); the baseline is a buffer of the module.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.scoring import score
from lightning_nas.seeding import generator
from lightning_nas.strategies.base import SearchStrategy


class Controller(nn.Module):
    """A 2-layer LSTM that emits one categorical decision per edge, fed its previous decision.

    Logits are squashed as ``tanh_constant * tanh(logits / temperature)`` (Pham et al. Sec. 3.1,
    after Bello et al. 2017) to keep the policy from collapsing early.
    """

    def __init__(self, num_decisions: int, num_choices: int, hidden: int = 32, layers: int = 2,
                 tanh_constant: float = 2.5, temperature: float = 5.0, init_range: float = 0.1,
                 seed: int = 0) -> None:
        super().__init__()
        self.num_decisions, self.num_choices = num_decisions, num_choices
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embedding = nn.Embedding(num_choices, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers)
        self.head = nn.Linear(hidden, num_choices)
        gen = generator(seed, "controller-init")
        with torch.no_grad():  # uniform in [-0.1, 0.1] (Pham et al., appendix "Parameters Initialization")
            for p in self.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * init_range)

    def forward(self, generator: Optional[torch.Generator] = None, actions: Optional[list[int]] = None,
                greedy: bool = False) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Decisions, their total log-probability and the policy's summed entropy.

        ``actions`` evaluates given decisions; ``greedy`` takes the arg-max; otherwise samples
        from ``generator``.
        """
        inputs, state = self.start, None
        chosen: list[int] = []
        log_prob = self.start.new_zeros(())
        entropy = self.start.new_zeros(())
        for step in range(self.num_decisions):
            out, state = self.lstm(inputs.unsqueeze(0), state)
            logits = self.head(out.squeeze(0)).squeeze(0)
            logits = self.tanh_constant * torch.tanh(logits / self.temperature)
            log_p = F.log_softmax(logits, dim=-1)
            if actions is not None:
                action = int(actions[step])
            elif greedy:
                action = int(log_p.argmax())
            else:
                action = int(torch.multinomial(log_p.detach().exp().cpu().double(), 1, generator=generator))
            chosen.append(action)
            log_prob = log_prob + log_p[action]
            entropy = entropy - (log_p.exp() * log_p).sum()
            inputs = self.embedding.weight[action].unsqueeze(0)
        return chosen, log_prob, entropy


class ENAS(SearchStrategy):
    """Args (defaults: ENAS, Pham et al. 2018, Sec. 3.2, CIFAR-10; controller size of the NB201 port,
    Dong & Yang 2020):
        controller_hidden, controller_layers: LSTM 32 units, 2 layers.
        controller_lr: Adam 3.5e-4.
        tanh_constant, temperature: 2.5 and 5.0 on the sampling logits.
        entropy_weight: 1e-4.  baseline_decay: 0.95.
        grad_clip: gradient-norm bound 5 on the shared weights.
        lr, momentum, weight_decay, nesterov, min_lr: SGD 0.05, nesterov momentum 0.9, 1e-4,
            cosine to 0.001; 150 epochs, batch size 64 (our recipe); reward batches come from
            the architecture split (``data.arch_split``).
    """

    uses_architecture_split = True

    def __init__(self, controller_hidden: int = 32, controller_layers: int = 2, controller_lr: float = 3.5e-4,
                 tanh_constant: float = 2.5, temperature: float = 5.0, entropy_weight: float = 1e-4,
                 baseline_decay: float = 0.95, grad_clip: float = 5.0,
                 space: str = "nb201", space_options: Optional[dict[str, Any]] = None,
                 network: Optional[dict[str, Any]] = None, num_classes: int = 10, in_channels: int = 3,
                 lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 1e-4, nesterov: bool = True,
                 lr_schedule: Literal["cosine", "constant"] = "cosine", min_lr: float = 0.001, seed: int = 0) -> None:
        super().__init__(space=space, space_options=space_options, network=network, num_classes=num_classes,
                         in_channels=in_channels, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         nesterov=nesterov, lr_schedule=lr_schedule, min_lr=min_lr, seed=seed)
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"model.baseline_decay must be in [0, 1), got {baseline_decay}")
        if controller_hidden < 1 or controller_layers < 1:
            raise ValueError("model.controller_hidden and model.controller_layers must be >= 1")
        edges = getattr(self.space, "edges", None)
        if edges is None:
            raise ValueError(f"model.space: ENAS needs a cell space with edges and operations, got {space}")
        self.automatic_optimization = False
        self.controller = Controller(len(edges), len(self.space.operations), controller_hidden, controller_layers,
                                     tanh_constant, temperature, seed=seed)
        self.register_buffer("baseline", torch.zeros((), dtype=torch.float64))
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ policy
    def to_architecture(self, choices: list[int]) -> Hashable:
        one_hot = torch.zeros(len(choices), len(self.space.operations))
        one_hot[torch.arange(len(choices)), torch.tensor(choices)] = 1.0
        return self.space.decode(one_hot)

    def to_choices(self, arch: Hashable) -> list[int]:
        return [self.space.operations.index(op) for op in arch.ops]

    @torch.no_grad()
    def sample_architecture(self) -> Hashable:
        choices, _, _ = self.controller(generator=self.arch_generator)
        return self.to_architecture(choices)

    @torch.no_grad()
    def derive_architecture(self) -> Hashable:
        """The controller's most likely architecture, decision by decision (greedy arg-max)."""
        choices, _, _ = self.controller(greedy=True)
        return self.to_architecture(choices)

    @torch.no_grad()
    def candidate_architectures(self, count: int, gen: torch.Generator) -> list[Hashable]:
        """Distinct samples of the controller (fewer if a peaked policy repeats itself)."""
        archs: list[Hashable] = []
        seen: set[Hashable] = set()
        for _ in range(50 * count):
            if len(archs) >= min(count, self.space.size):
                break
            arch = self.to_architecture(self.controller(generator=gen)[0])
            if arch not in seen:
                seen.add(arch)
                archs.append(arch)
        return archs

    def log_probability(self, arch: Hashable) -> torch.Tensor:
        return self.controller(actions=self.to_choices(arch))[1]

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        optimizer, scheduler = self.weight_optimizer()
        controller_opt = torch.optim.Adam(self.controller.parameters(), lr=self.hparams.controller_lr)
        return [optimizer, controller_opt], [{"scheduler": scheduler, "interval": "epoch"}]

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    def architecture_parameters(self) -> list[nn.Parameter]:
        return list(self.controller.parameters())

    def controller_step(self, reward_fn: Callable[[Hashable], float], optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One REINFORCE update of the controller (Williams 1992; Pham et al. Sec. 2.2)."""
        choices, log_prob, entropy = self.controller(generator=self.arch_generator)
        arch = self.to_architecture(choices)
        reward = float(reward_fn(arch))
        if self._trainer is not None and self.trainer.world_size > 1:
            # every rank scored the same architecture on its own batch: one reward, one baseline everywhere
            reward = float(self.trainer.strategy.reduce(torch.tensor(reward, device=self.device), reduce_op="mean"))
        if not bool(self.baseline_ready):
            self.baseline.fill_(reward)
            self.baseline_ready.fill_(True)
        advantage = reward - float(self.baseline)
        loss = -advantage * log_prob - self.hparams.entropy_weight * entropy
        optimizer.zero_grad()
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()
        optimizer.step()
        decay = self.hparams.baseline_decay
        self.baseline.mul_(decay).add_((1 - decay) * reward)
        return {"reward": reward, "baseline": float(self.baseline), "entropy": float(entropy.detach())}

    def training_step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        weight_opt, controller_opt = self.optimizers()
        xw, yw = batch["weights"]
        xa, ya = batch["arch"]
        # shared weights on an architecture sampled from the (fixed) policy
        arch = self.sample_architecture()
        weight_opt.zero_grad()
        loss = self.classification_step(xw, yw, self(xw, arch))
        self.manual_backward(loss)
        if self.hparams.grad_clip > 0:
            self.clip_gradients(weight_opt, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        weight_opt.step()
        # controller on the validation reward (accuracy in [0, 1], batch-statistics BN, no side effects)
        stats = self.controller_step(
            lambda a: score(self.supernet, self.architecture_forward(a), [(xa, ya)]).accuracy / 100.0,
            controller_opt)
        self.log_dict({f"controller/{k}": v for k, v in stats.items()}, on_step=False, on_epoch=True)
        return loss.detach()

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
