"""SGD -> averaged SGD (AWD-LSTM's NT-ASGD) as a callback: the non-monotone trigger, the Polyak average
evaluated in place of the iterate, fine-tuning's stop, and exact resumption with the average."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from callbacks.asgd import AveragedSGD

VAL_LOSSES = [0.5, 0.8, 0.9, 0.7, 0.6, 0.65]  # nonmono=1: 0.9 > min([0.5]) triggers at epoch 2


class Batches:
    """Eight fixed mini-batches per epoch whose position is checkpointed (Lightning's ``_Stateful`` loader)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.consumed, self.resume = x, y, 0, 0

    def __len__(self) -> int:
        return 8

    def __iter__(self):
        start, self.resume = self.resume, 0
        for i in range(start, 8):
            yield self.x[i * 8:(i + 1) * 8], self.y[i * 8:(i + 1) * 8]

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.resume = state["consumed"] % 8


class Toy(LightningModule):
    """Linear regression trained with plain SGD; validation logs a scripted ``val/loss`` and records
    the weights it was evaluated with."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(3, 1)
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 3, generator=gen)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 * torch.randn(64, 1, generator=gen)
        self.evaluated: list[torch.Tensor] = []

    def train_dataloader(self):
        self.loader = Batches(self.x, self.y)
        return self.loader

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[:8], self.y[:8]), batch_size=8)

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.loader.consumed = batch_idx + 1
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        self.evaluated.append(self.layer.weight.detach().clone())
        self.log("val/loss", VAL_LOSSES[min(self.current_epoch, len(VAL_LOSSES) - 1)])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def fit(root: Path, callback: AveragedSGD, max_epochs: int = 6, max_steps: int = -1, ckpt_path=None,
        every: int | None = None) -> Toy:
    model = Toy()
    callbacks = [callback]
    if every:
        callbacks.append(ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=every, save_top_k=-1))
    trainer = Trainer(max_epochs=max_epochs, max_steps=max_steps, default_root_dir=root, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      accelerator="cpu", callbacks=callbacks, enable_checkpointing=bool(every))
    trainer.fit(model, ckpt_path=ckpt_path)
    return model


def test_non_monotone_trigger() -> None:
    asgd = AveragedSGD(nonmono=2)
    decisions = []
    for loss in [5.0, 4.0, 3.0, 3.5, 3.2, 4.1, 2.0]:
        decisions.append(asgd.should_switch(loss))
        asgd.history.append(loss)
    # 3.5 > min(history[:-2]) = 5.0? no; 3.2 > min([5, 4]) no; 4.1 > min([5, 4, 3]) = 3 yes
    assert decisions == [False, False, False, False, False, True, False]
    with pytest.raises(ValueError, match="nonmono"):
        AveragedSGD(nonmono=0)


def test_switch_at_the_trigger_and_the_average_is_what_validation_sees(tmp_path: Path) -> None:
    asgd = AveragedSGD(nonmono=1)
    model = fit(tmp_path, asgd)
    assert asgd.switched_at == 2 and asgd.history == pytest.approx(VAL_LOSSES)
    assert asgd.steps == 3 * 8  # epochs 3, 4, 5 averaged, 8 steps each
    # before the switch validation sees the iterate; after it the average, which differs from the iterate
    assert not torch.equal(asgd.average[0], model.layer.weight)
    assert torch.equal(model.evaluated[5], asgd.average[0])
    plain = fit(tmp_path / "plain", AveragedSGD(nonmono=100))
    assert torch.equal(plain.layer.weight, model.layer.weight)  # averaging never changes the iterate
    assert torch.equal(plain.evaluated[2], model.evaluated[2])  # the switch epoch still saw the iterate
    assert not torch.equal(plain.evaluated[3], model.evaluated[3])  # from then on the average


def test_average_is_the_mean_of_the_iterates_since_the_switch() -> None:
    asgd = AveragedSGD()
    asgd.switched_at = 0
    module = torch.nn.Linear(2, 1)
    iterates = []
    for k in range(5):
        with torch.no_grad():
            module.weight.add_(float(k))
        iterates.append(module.weight.detach().clone())
        asgd.on_train_batch_end(None, module, None, None, k)
    torch.testing.assert_close(asgd.average[0], torch.stack(iterates).mean(dim=0))


def test_finetune_averages_from_the_start_and_stops_at_the_trigger(tmp_path: Path) -> None:
    asgd = AveragedSGD(nonmono=1, finetune=True, best_path=str(tmp_path / "best.pt"))
    fit(tmp_path, asgd)
    assert asgd.switched_at == -1 and asgd.history == pytest.approx(VAL_LOSSES[:3])  # stopped at epoch 2's trigger
    assert asgd.steps == 3 * 8
    assert (tmp_path / "best.pt").is_file()


def test_resume_mid_epoch_continues_the_average_exactly(tmp_path: Path) -> None:
    reference = AveragedSGD(nonmono=1)
    full = fit(tmp_path / "a", reference)
    first = AveragedSGD(nonmono=1)
    fit(tmp_path / "b", first, max_steps=37, every=37)  # killed in epoch 4, after the switch
    checkpoint = next((tmp_path / "b" / "ckpt").glob("*.ckpt"))
    resumed = AveragedSGD(nonmono=1)
    model = fit(tmp_path / "c", resumed, ckpt_path=checkpoint)
    assert torch.equal(model.layer.weight, full.layer.weight)
    assert resumed.history == reference.history and resumed.steps == reference.steps
    assert all(torch.equal(a, b) for a, b in zip(resumed.average, reference.average, strict=True))
    saved = torch.load(checkpoint, weights_only=False)
    raw = saved["state_dict"]["layer.weight"]
    assert not torch.equal(raw, saved["callbacks"][next(k for k in saved["callbacks"] if "AveragedSGD" in k)][
        "average"][0])  # the checkpoint holds the iterate, the average separately


def test_window_learning_rate_scales_the_weight_step_only() -> None:
    from types import SimpleNamespace

    from callbacks.asgd import WindowLearningRate

    weights, alpha = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    module = SimpleNamespace(architecture_parameters=lambda: [alpha])
    sgd, adam = torch.optim.SGD([weights], lr=20.0), torch.optim.Adam([alpha], lr=3e-3)
    callback = WindowLearningRate()
    batch = {"weights": None, "window": {"length": 17, "bptt": 35}}
    callback.on_train_batch_start(None, module, batch, 0)
    callback.on_before_optimizer_step(None, module, sgd)
    callback.on_before_optimizer_step(None, module, adam)
    assert sgd.param_groups[0]["lr"] == 20.0 * 17 / 35 and adam.param_groups[0]["lr"] == 3e-3
    callback.on_train_batch_end(None, module, None, batch, 0)
    assert sgd.param_groups[0]["lr"] == 20.0
    callback.on_train_batch_start(None, module, {"weights": None}, 1)  # stateless batch: factor 1
    callback.on_before_optimizer_step(None, module, sgd)
    assert sgd.param_groups[0]["lr"] == 20.0
