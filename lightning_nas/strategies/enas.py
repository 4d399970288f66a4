"""ENAS: efficient neural architecture search via parameter sharing (Pham et al., ICML 2018).

An LSTM controller emits one token per pick of every decision the space states (Sec. 2.3:
an operation per edge, an input per node; an input choice of k emits k distinct tokens), each
token fed back as the next input. The shared weights are trained on sampled architectures, the
controller with REINFORCE on the validation reward R = accuracy of the sampled architecture on
an architecture-split batch, with a moving-average baseline b <- decay * b + (1 - decay) * R and
an entropy bonus (Sec. 2.2):

    loss_controller = -(R - b) * log pi(arch) - entropy_weight * H(pi)

ENAS alternates a whole epoch of weight training with a phase of controller steps; here the two
are interleaved every step (one weight step, one controller step), which keeps every step the
same for Lightning's loop and for resumption. All controller sampling draws from the seeded
architecture generator (saved in checkpoints); the baseline is a buffer of the module. Its
answer is ENAS' own (Sec. 2.2, "Deriving Architectures"): architectures sampled from the trained
policy, the best by shared-weight score on validation data (the final selection callback).
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.errors import ArchitectureError, RecipeError, UnsupportedCombinationError
from lightning_nas.registry import NETWORKS, STRATEGIES
from lightning_nas.scoring import score
from lightning_nas.seeding import generator
from lightning_nas.spaces.decisions import Choice
from lightning_nas.strategies.bilevel import BilevelStrategy
from lightning_nas.strategies.settings import ArchitectureOptimizer, WeightOptimizer


class Controller(nn.Module):
    """A 2-layer LSTM that emits the picks of a sequence of choices, fed its previous token.

    One output head over the largest option count, masked to each choice's options and to the
    options already taken by the same choice. Logits are squashed as
    ``tanh_constant * tanh(logits / temperature)`` (Pham et al. Sec. 3.1, after Bello et al.
    2017) to keep the policy from collapsing early.
    """

    def __init__(self, choices: Sequence[Choice], hidden: int = 32, layers: int = 2, tanh_constant: float = 2.5,
                 temperature: float = 5.0, init_range: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        self.choices = tuple(choices)
        self.tanh_constant, self.temperature = tanh_constant, temperature
        widest = max(len(c) for c in self.choices)
        #: token embedding per (choice, option); offsets into one table
        self.offsets = [0]
        for c in self.choices:
            self.offsets.append(self.offsets[-1] + len(c))
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embedding = nn.Embedding(self.offsets[-1], hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers)
        self.head = nn.Linear(hidden, widest)
        self._masks: dict[tuple, torch.Tensor] = {}
        gen = generator(seed, "controller-init")
        with torch.no_grad():  # uniform in [-0.1, 0.1] (Pham et al., appendix "Parameters Initialization")
            for p in self.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * init_range)

    def forward(self, generator: Optional[torch.Generator] = None, picks: Optional[Sequence[Sequence[int]]] = None,
                greedy: bool = False) -> tuple[tuple[tuple[int, ...], ...], torch.Tensor, torch.Tensor]:
        """Picks per choice, their total log-probability and the policy's summed entropy.

        ``picks`` evaluates given picks; ``greedy`` takes the arg-max; otherwise samples from
        ``generator``. The policy always runs in float32, also inside a mixed-precision step: it is a
        few hundred tiny operations whose log-probabilities feed REINFORCE, and oneDNN has no bf16
        LSTM on CPUs without native bf16 (AVX2), where autocast would make it fail."""
        with torch.autocast(device_type=self.start.device.type, enabled=False):
            return self._policy(generator, picks, greedy)

    def _disallowed(self, allowed: list[bool], device: torch.device) -> torch.Tensor:
        """The boolean mask of the options a token may not take (cached per pattern)."""
        key = (tuple(allowed), str(device))
        if key not in self._masks:
            self._masks[key] = ~torch.tensor(allowed, device=device)
        return self._masks[key]

    def _policy(self, generator: Optional[torch.Generator], picks: Optional[Sequence[Sequence[int]]],
                greedy: bool) -> tuple[tuple[tuple[int, ...], ...], torch.Tensor, torch.Tensor]:
        inputs, state = self.start, None
        chosen: list[tuple[int, ...]] = []
        widest = self.head.out_features
        steps: list[torch.Tensor] = []  # each token's log-probabilities over the allowed options
        allowed_rows: list[list[bool]] = []
        actions: list[int] = []
        for c, choice in enumerate(self.choices):
            taken: list[int] = []
            for k in range(choice.pick):
                out, state = self.lstm(inputs.unsqueeze(0), state)
                logits = self.head(out.squeeze(0)).squeeze(0)
                logits = self.tanh_constant * torch.tanh(logits / self.temperature)
                allowed = [o < len(choice) and o not in taken for o in range(widest)]
                if all(allowed):
                    log_p = F.log_softmax(logits, dim=-1)
                else:
                    log_p = F.log_softmax(logits.masked_fill(self._disallowed(allowed, logits.device), float("-inf")),
                                          dim=-1)
                if picks is not None:
                    action = sorted(picks[c])[k]
                elif greedy:
                    action = int(log_p.argmax())
                else:
                    action = int(torch.multinomial(log_p.detach().exp().cpu().double(), 1, generator=generator))
                taken.append(action)
                steps.append(log_p)
                allowed_rows.append(allowed)
                actions.append(action)
                inputs = self.embedding.weight[self.offsets[c] + action].unsqueeze(0)
            chosen.append(tuple(sorted(taken)))
        # the sums over tokens at once (not an add per token): log pi(a) and the policy's entropy
        log_ps = torch.stack(steps)  # (tokens, widest), -inf where not allowed
        rows = torch.arange(len(steps), device=log_ps.device)
        log_prob = log_ps[rows, torch.tensor(actions, device=log_ps.device)].sum()
        allowed_mask = torch.tensor(allowed_rows, device=log_ps.device)
        entropy = -(log_ps.exp() * log_ps.masked_fill(~allowed_mask, 0.0)).sum()  # no 0 * -inf, in value or gradient
        return tuple(chosen), log_prob, entropy


def loose_end_output(space: str, network: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The network options with ``output: loose_ends``; one line if the space's network has no such
    output or the recipe sets another."""
    network = dict(network or {})
    modes = NETWORKS.get(space).output_modes
    if "loose_ends" not in modes:
        raise UnsupportedCombinationError(f"ENAS cannot combine loose ends on the {space} space: its network "
                                          f"{NETWORKS.get(space).__name__} has no loose-end output")
    if network.get("output", "loose_ends") != "loose_ends":
        raise RecipeError(f"model.combine_loose_ends: true needs model.network.output loose_ends, "
                          f"not {network['output']!r}")
    return {**network, "output": "loose_ends"}


#: ENAS' micro-search shared weights (Pham et al. 2018, Sec. 3.2): SGD 0.05 cosine, nesterov 0.9,
#: weight decay 1e-4, clipping 5. Controller: Adam 3.5e-3 (ENAS micro search), controller gradient
#: clipping 5 (the NB201 port), no Adam weight decay.
ENAS_WEIGHTS = WeightOptimizer(lr=0.05, momentum=0.9, weight_decay=1e-4, nesterov=True, min_lr=0.001, grad_clip=5.0)
ENAS_CONTROLLER = ArchitectureOptimizer(lr=3.5e-3, betas=(0.0, 0.999), weight_decay=0.0, grad_clip=5.0)


@STRATEGIES.register("enas")
class ENAS(BilevelStrategy):
    """Args (defaults: ENAS, Pham et al. 2018, Sec. 3.2 and its code; controller size of the NB201 port):
        controller_hidden, controller_layers: LSTM 32 units, 2 layers.
        tanh_constant, temperature: 2.5 and 5.0 on the sampling logits.
        entropy_weight: 1e-4.  baseline_decay: 0.99 (ENAS code and the NB201 port).
        max_resamples: redraws of a sampled combination the space rejects (constrained spaces).
        combine_loose_ends: ENAS' cell output (Pham et al. 2018, Sec. 2.1 and App.): the nodes no
            other node reads ("loose ends") form the output (averaged in the RNN cell, a 1x1
            ReLU-conv-BN over their concatenation in the CNN cell), so its width does not depend
            on the sampled architecture; passed to the network as ``output: loose_ends``, for
            networks offering it (``SuperNet.output_modes``). False keeps the network's own output.
        optimizer: ``ENAS_WEIGHTS``; architecture_optimizer: the controller's Adam (``ENAS_CONTROLLER``).
    """

    #: a controller rate that moves the policy within the few test steps
    test_options = {"architecture_optimizer.lr": 0.01}

    def __init__(self, controller_hidden: int = 32, controller_layers: int = 2, tanh_constant: float = 2.5,
                 temperature: float = 5.0, entropy_weight: float = 1e-4, baseline_decay: float = 0.99,
                 max_resamples: int = 100, combine_loose_ends: bool = False, optimizer: WeightOptimizer = ENAS_WEIGHTS,
                 architecture_optimizer: ArchitectureOptimizer = ENAS_CONTROLLER,
                 network: Optional[dict[str, Any]] = None, **kwargs: Any) -> None:
        if not 0 <= baseline_decay < 1:
            raise RecipeError(f"model.baseline_decay must be in [0, 1), got {baseline_decay}")
        if controller_hidden < 1 or controller_layers < 1:
            raise RecipeError("model.controller_hidden and model.controller_layers must be >= 1")
        if combine_loose_ends:
            network = loose_end_output(kwargs.get("space", "nb201"), network)
        super().__init__(optimizer=optimizer, architecture_optimizer=architecture_optimizer, network=network, **kwargs)
        self.combine_loose_ends = combine_loose_ends
        self.entropy_weight, self.baseline_decay, self.max_resamples = entropy_weight, baseline_decay, max_resamples
        self.controller = Controller(self.space.decisions, controller_hidden, controller_layers, tanh_constant,
                                     temperature, seed=self.hparams.seed)
        self.register_buffer("baseline", torch.zeros((), dtype=torch.float64))
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ policy
    def _draw(self, gen: Optional[torch.Generator], greedy: bool = False) -> tuple[Hashable, torch.Tensor, torch.Tensor]:
        """(architecture, log-probability, entropy); combinations the space rejects are redrawn."""
        for _ in range(self.max_resamples):
            picks, log_prob, entropy = self.controller(generator=gen, greedy=greedy)
            try:
                return self.space.from_decisions(picks), log_prob, entropy
            except ArchitectureError:
                if greedy:
                    break
        raise ArchitectureError(f"the ENAS controller produced no valid {self.space.name} architecture in "
                                f"{self.max_resamples} draws")

    @torch.no_grad()
    def sample_architecture(self) -> Hashable:
        return self._draw(self.arch_generator)[0]

    @torch.no_grad()
    def derive_architecture(self) -> Hashable:
        """The controller's most likely architecture, decision by decision (greedy arg-max); on a
        constrained space where that combination is invalid, the most probable valid one among
        ``max_resamples`` seeded samples of the policy."""
        try:
            return self._draw(None, greedy=True)[0]
        except ArchitectureError:
            gen = generator(self.hparams.seed, "enas-derivation")
            samples = [self._draw(gen) for _ in range(self.max_resamples)]
            return max(samples, key=lambda s: float(s[1]))[0]

    @torch.no_grad()
    def candidate_architectures(self, count: int, gen: torch.Generator) -> list[Hashable]:
        """Distinct samples of the controller (fewer if a peaked policy repeats itself)."""
        archs: list[Hashable] = []
        seen: set[Hashable] = set()
        for _ in range(50 * count):
            if len(archs) >= min(count, self.space.size):
                break
            arch = self._draw(gen)[0]
            if arch not in seen:
                seen.add(arch)
                archs.append(arch)
        return archs

    def log_probability(self, arch: Hashable) -> torch.Tensor:
        return self.controller(picks=self.space.to_decisions(arch))[1]

    def architecture_parameters(self) -> list[nn.Parameter]:
        return list(self.controller.parameters())

    # ------------------------------------------------------------------ optimisation
    def weight_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.sample_architecture())

    def architecture_step(self, batch: Any, weight_optimizer: torch.optim.Optimizer) -> None:
        """One REINFORCE update of the controller (Williams 1992; Pham et al. Sec. 2.2), reward =
        validation accuracy in [0, 1] of a sampled architecture (batch-statistics BN, no side effects)."""
        xa, ya = batch["arch"]
        stats = self.reinforce(lambda a: score(self.supernet, self.architecture_forward(a), [(xa, ya)]).accuracy / 100.0)
        for key, value in stats.items():
            self.log_train(f"controller/{key}", value)

    def reinforce(self, reward_fn: Callable[[Hashable], float], optimizer: Optional[torch.optim.Optimizer] = None) -> dict[str, float]:
        """Write the REINFORCE gradient of one sampled architecture; step ``optimizer`` if given."""
        arch, log_prob, entropy = self._draw(self.arch_generator)
        reward = float(reward_fn(arch))
        if self._trainer is not None and self.trainer.world_size > 1:
            # every rank scored the same architecture on its own batch: one reward, one baseline everywhere
            reward = float(self.trainer.strategy.reduce(torch.tensor(reward, device=self.device), reduce_op="mean"))
        if not bool(self.baseline_ready):
            self.baseline.fill_(reward)
            self.baseline_ready.fill_(True)
        advantage = reward - float(self.baseline)
        loss = -advantage * log_prob - self.entropy_weight * entropy
        if optimizer is not None:
            optimizer.zero_grad()
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()
        if optimizer is not None:
            optimizer.step()
        self.baseline.mul_(self.baseline_decay).add_((1 - self.baseline_decay) * reward)
        return {"reward": reward, "baseline": float(self.baseline), "entropy": float(entropy.detach())}
