"""SGD -> averaged SGD with the non-monotone trigger (AWD-LSTM, Merity et al. 2018, Sec. 3; DARTS
``rnn/train.py`` and ``finetune.py``), as a Lightning callback any strategy can use.

AWD-LSTM trains with plain SGD and, at the first validation whose loss is worse than the best of
all validations except the last ``nonmono`` (5), switches to ``torch.optim.ASGD(t0=0, lambd=0)``.
With ``lambd = 0`` that optimiser takes exactly the SGD step (no momentum) and in addition keeps
the running average of the iterates, which is evaluated (and saved as "the model") instead of the
iterate. This callback does the same without swapping the strategy's optimiser: after the switch
it averages the trained parameters after every optimiser step (the Polyak average of all iterates
since the switch; torch's ASGD starts averaging one step later), swaps the average in for
validation and test, and back before anything is checkpointed. With ``momentum: 0`` (DARTS and
AWD-LSTM) that is AWD-LSTM's NT-ASGD; with momentum it is SGD-with-momentum plus iterate averaging.

Fine-tuning (AWD-LSTM's ``finetune.py``): ``finetune: true`` averages from the first step and stops
training at the next non-monotone trigger ("Done!"). Start it from the averaged weights of the
first run (``best_path`` writes them whenever the validation loss improves).

State (history, switch epoch, average, step count) is saved in the checkpoint, so a resumed run
continues averaging exactly. Logs ``val/perplexity`` (exp of the monitored loss) and ``asgd/active``.

The strategy needs nothing but this callback in ``trainer.callbacks``; Lightning runs checkpoint
callbacks after the others, so the iterate is back in place before a checkpoint is written.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from lightning_nas.data.ptb import restore_learning_rate, scale_learning_rate, window_lr_scale


class AveragedSGD(Callback):
    """Args:
        nonmono: the non-monotone interval n (AWD-LSTM and DARTS: 5).
        monitor: the validation loss logged by the strategy (``val/loss``, the log-perplexity).
        finetune: average from the start and stop at the next trigger.
        best_path: where to save the evaluated (averaged once active) weights on each improvement.
    """

    def __init__(self, nonmono: int = 5, monitor: str = "val/loss", finetune: bool = False,
                 best_path: Optional[str] = None) -> None:
        if nonmono < 1:
            raise ValueError(f"asgd.nonmono must be >= 1, got {nonmono}")
        self.nonmono, self.monitor, self.finetune, self.best_path = nonmono, monitor, finetune, best_path
        self.history: list[float] = []
        self.switched_at: Optional[int] = -1 if finetune else None  # epoch of the switch (-1: from the start)
        self.steps = 0  # iterates averaged
        self.average: Optional[list[torch.Tensor]] = None
        self._swapped: Optional[list[torch.Tensor]] = None

    # ------------------------------------------------------------------ what is averaged
    @staticmethod
    def parameters(pl_module: LightningModule) -> list[torch.nn.Parameter]:
        source = pl_module.weight_parameters() if hasattr(pl_module, "weight_parameters") else pl_module.parameters()
        seen, params = set(), []
        for p in source:
            if p.requires_grad and id(p) not in seen:  # tied weights once
                seen.add(id(p))
                params.append(p)
        return params

    @property
    def active(self) -> bool:
        return self.switched_at is not None

    def should_switch(self, loss: float) -> bool:
        """AWD-LSTM: ``len(history) > n and loss > min(history[:-n])`` (before ``loss`` is appended)."""
        return len(self.history) > self.nonmono and loss > min(self.history[:-self.nonmono])

    # ------------------------------------------------------------------ hooks
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self.active:
            return
        params = self.parameters(pl_module)
        self._on_device(params)
        with torch.no_grad():
            if self.average is None or self.steps == 0:
                self.average = [p.detach().clone() for p in params]
                self.steps = 1
            else:
                self.steps += 1
                for a, p in zip(self.average, params, strict=True):
                    a.add_(p.detach() - a, alpha=1.0 / self.steps)

    def _swap_in(self, pl_module: LightningModule) -> None:
        if self.average is None or self._swapped is not None:
            return
        params = self.parameters(pl_module)
        self._on_device(params)
        with torch.no_grad():
            self._swapped = [p.detach().clone() for p in params]
            for p, a in zip(params, self.average, strict=True):
                p.copy_(a)

    def _swap_out(self, pl_module: LightningModule) -> None:
        if self._swapped is None:
            return
        with torch.no_grad():
            for p, saved in zip(self.parameters(pl_module), self._swapped, strict=True):
                p.copy_(saved)
        self._swapped = None

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(pl_module)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(pl_module)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_out(pl_module)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        try:
            if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
                return
            loss = float(trainer.callback_metrics[self.monitor])
            improved = not self.history or loss < min(self.history)
            if improved and self.best_path and trainer.is_global_zero:
                Path(self.best_path).parent.mkdir(parents=True, exist_ok=True)
                torch.save(pl_module.state_dict(), self.best_path)  # the evaluated (averaged) weights
            trigger = self.should_switch(loss)
            if trigger and self.finetune:
                trainer.should_stop = True
            elif trigger and not self.active:
                self.switched_at = int(trainer.current_epoch)
            self.history.append(loss)
            metrics = {"val/perplexity": math.exp(min(loss, 50.0)), "asgd/active": float(self.active)}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        finally:
            self._swap_out(pl_module)

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "switched_at": self.switched_at, "steps": self.steps,
                "average": None if self.average is None else [a.detach().cpu().clone() for a in self.average],
                "nonmono": self.nonmono, "finetune": self.finetune}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [float(v) for v in state["history"]]
        self.switched_at, self.steps = state["switched_at"], int(state["steps"])
        self.average = state["average"]

    def _on_device(self, params: list[torch.nn.Parameter]) -> None:
        """A restored average comes back on the CPU; move it next to the parameters."""
        if self.average is not None and params and self.average[0].device != params[0].device:
            self.average = [a.to(p.device) for a, p in zip(self.average, params, strict=True)]


class WindowLearningRate(Callback):
    """AWD-LSTM's per-window learning rate: the weight optimiser's ``lr`` is multiplied by
    ``length / bptt`` of the step's window (``lightning_nas.data.ptb.window_lr_scale``) for that step
    only, then restored, as DARTS' and AWD-LSTM's ``lr2 = lr; lr = lr2 * seq_len / bptt; step; lr = lr2``.

    Scales in ``on_before_optimizer_step`` (after the backward pass and gradient clipping, right
    before the update; called for automatic and manual optimisation) and restores in
    ``on_train_batch_end``, before any checkpoint callback runs. Optimisers holding architecture
    parameters (``pl_module.architecture_parameters()``) are left alone: DARTS scales only the
    weights' SGD. Batches without a ``window`` (stateless mode) use factor 1.
    """

    def __init__(self) -> None:
        self.scale = 1.0
        self._saved: list[tuple[torch.optim.Optimizer, list[float]]] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self.scale = window_lr_scale(batch)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if self.scale == 1.0:
            return
        architecture = {id(p) for p in getattr(pl_module, "architecture_parameters", lambda: [])()}
        if any(id(p) in architecture for group in optimizer.param_groups for p in group["params"]):
            return
        self._saved.append((optimizer, scale_learning_rate(optimizer, self.scale)))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        for optimizer, saved in reversed(self._saved):
            restore_learning_rate(optimizer, saved)
        self._saved = []
