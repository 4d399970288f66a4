"""A test-only callback for the end-to-end tests (tests/test_train_integration.py).

Passed to ``train.py`` with ``--trainer.callbacks+=tests.integration_probe.Probe``; it records what
the tests compare and can kill its own process at a chosen step. Behaviour that must differ
between the first run and its resumption is read from the environment, so that the resolved
recipe (``config.yaml``, reused by ``--resume``) stays the same:

- ``LNAS_PROBE_KILL_AT_STEP=N``: SIGKILL this process in ``on_train_batch_end`` once
  ``global_step == N`` (before the ModelCheckpoint of that step, which Lightning runs last);
- ``LNAS_PROBE_SLEEP=S``: sleep S seconds per training step (to kill a run from outside in time);
- ``LNAS_PROBE_BATCHES=1``: record a fingerprint of every training batch and GDAS' sampled path;
- ``LNAS_PROBE_NOISE=1``: record the next draws of the network's dropout stream after every step.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import time
from pathlib import Path

import torch
from pytorch_lightning import Callback


def _copy(value):
    """A state-dict entry, detached: a tensor or a network's extra state (a dict)."""
    return value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


class Probe(Callback):
    """Writes ``RUN_DIR/probe/archs_rank{r}.jsonl`` (global step, sampled architecture) and at the end
    of fit ``RUN_DIR/probe/final_rank{r}.pt`` (weights, optimizer, scheduler, generator state)."""

    def __init__(self, subdir: str = "probe") -> None:
        self.subdir = subdir

    def _dir(self, trainer) -> Path:
        path = Path(trainer.default_root_dir) / self.subdir
        path.mkdir(parents=True, exist_ok=True)
        return path

    def setup(self, trainer, pl_module, stage: str) -> None:
        if getattr(pl_module, "_probe_wrapped", False):
            return
        sample = pl_module.sample_architecture
        log = self._dir(trainer) / f"archs_rank{trainer.global_rank}.jsonl"

        def recorded():
            arch = sample()
            with open(log, "a") as handle:
                handle.write(json.dumps([trainer.global_step, str(arch)]) + "\n")
            return arch

        pl_module.sample_architecture = recorded
        pl_module._probe_wrapped = True

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.global_step == 0:
            torch.save({k: _copy(v) for k, v in pl_module.state_dict().items()},
                       self._dir(trainer) / f"initial_rank{trainer.global_rank}.pt")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if os.environ.get("LNAS_PROBE_BATCHES"):  # what each rank trained on, and GDAS' sampled path
            x = batch["weights"][0] if isinstance(batch, dict) else batch[0]
            sampled = {k: v.tolist() for k, v in getattr(pl_module, "last_indices", {}).items()}
            with open(self._dir(trainer) / f"batches_rank{trainer.global_rank}.jsonl", "a") as handle:
                handle.write(json.dumps([trainer.global_step, float(x.double().sum()), sampled]) + "\n")
        if os.environ.get("LNAS_PROBE_NOISE"):  # the next dropout draws of each rank (its stream's position)
            state = pl_module.supernet.noise_state()
            if state is not None:
                stream = torch.Generator()
                stream.set_state(state)
                with open(self._dir(trainer) / f"noise_rank{trainer.global_rank}.jsonl", "a") as handle:
                    handle.write(json.dumps([trainer.global_step, torch.rand(8, generator=stream).tolist()]) + "\n")
        sleep = float(os.environ.get("LNAS_PROBE_SLEEP", "0") or 0)
        if sleep:
            time.sleep(sleep)
        kill_at = os.environ.get("LNAS_PROBE_KILL_AT_STEP")
        if kill_at and trainer.global_step == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)

    def on_fit_end(self, trainer, pl_module) -> None:
        optimizer = trainer.optimizers[0]
        grads = {name: (p.grad is not None) for name, p in pl_module.named_parameters()}
        state = {
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "state_dict": {k: _copy(v) for k, v in pl_module.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "schedulers": [config.scheduler.state_dict() for config in trainer.lr_scheduler_configs],
            "architecture_generator": pl_module.arch_generator.get_state(),
            "has_grad": grads,
        }
        torch.save(state, self._dir(trainer) / f"final_rank{trainer.global_rank}.pt")
