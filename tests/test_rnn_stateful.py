"""Stateful truncated BPTT on Penn Treebank: stream order, AWD-LSTM's variable window lengths from the
run's seed, the window's learning-rate factor, exact resumption of the stream position, and a manual
training loop (carried hidden state + dropout + SGD) killed mid-epoch and resumed bit for bit."""
from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_DATA
from lightning_nas.data import PTBDataModule
from lightning_nas.data.batches import SeededBatches
from lightning_nas.data.ptb import (StreamBatches, batchify, scaled_learning_rate, window_lengths,
                                    window_lr_scale)
from lightning_nas.nn.darts_rnn import DartsRNNNetwork
from lightning_nas.spaces.darts_rnn import DartsRNNSpace
from test_ptb import write_corpus


def module(folder: Path, **options) -> PTBDataModule:
    config = dict(data_dir=str(folder), batch_size=4, eval_batch_size=3, bptt=6, seed=0)
    config.update(options)
    return PTBDataModule(**config)


def epoch(dm: PTBDataModule, loader, stop: int | None = None) -> list[dict]:
    out = []
    for batch in loader:
        out.append(dm.on_after_batch_transfer(batch, 0))
        if stop is not None and len(out) == stop:
            break
    return out


def test_stateful_is_the_default_and_stateless_stays_available(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path)
    assert isinstance(module(folder).train_dataloader(), StreamBatches)
    assert isinstance(module(folder, bptt_mode="stateless").train_dataloader(), SeededBatches)
    assert module(folder).stateful and not module(folder, bptt_mode="stateless").stateful
    with pytest.raises(ValueError, match="bptt_mode"):
        module(folder, bptt_mode="carry")


def test_stateful_windows_cover_the_stream_once_per_epoch_in_order(tmp_path: Path) -> None:
    dm = module(write_corpus(tmp_path, lines=200))
    data = batchify(dm.streams["weights"], 4)
    loader = dm.train_dataloader()
    for e in range(2):
        batches = epoch(dm, loader)
        windows = [b["window"] for b in batches]
        assert [w["epoch"] for w in windows] == [e] * len(batches)
        assert [w["index"] for w in windows] == list(range(len(batches)))
        assert [w["first"] for w in windows] == [True] + [False] * (len(batches) - 1)
        xs = torch.cat([b["weights"][0] for b in batches], dim=1)
        ys = torch.cat([b["weights"][1].view(4, -1) for b in batches], dim=1)
        end = xs.shape[1]
        assert data.shape[1] - 2 <= end <= data.shape[1] - 1  # every column once (AWD-LSTM stops at L - 2)
        assert torch.equal(xs, data[:, :end]) and torch.equal(ys, data[:, 1:end + 1])
        assert [w["start"] for w in windows] == [sum(v["length"] for v in windows[:i]) for i in range(len(windows))]


def test_variable_lengths_follow_awd_lstm_and_are_deterministic_per_seed() -> None:
    lengths = [n for _, n in window_lengths(70, 200_000, torch.Generator().manual_seed(0))]
    body = lengths[:-1]
    assert min(body) >= 5 and max(body) <= 70 + 20
    short = sum(n < 52 for n in body) / len(body)  # half-length windows: N(35, 5) < 52 almost surely
    assert 0.04 < short < 0.06  # probability 0.05
    long = [n for n in body if n >= 52]
    assert abs(sum(long) / len(long) - 69.5) < 0.3  # the jitter is centred (int() truncates: -0.5) ...
    assert 4.5 < torch.tensor(long, dtype=torch.float).std().item() < 5.5  # ... with sd 5 (cap rarely hit)
    fixed = window_lengths(35, 100, torch.Generator(), variable=False)
    assert [n for _, n in fixed] == [35, 35, 29]
    capped = window_lengths(10, 10_000, torch.Generator().manual_seed(0), max_seq_len_delta=0)
    uncapped = window_lengths(10, 10_000, torch.Generator().manual_seed(0), max_seq_len_delta=None)
    assert max(n for _, n in capped) == 10 < max(n for _, n in uncapped)
    darts_search = window_lengths(35, 20_000, torch.Generator().manual_seed(0), jitter=0)
    assert {n for _, n in darts_search[:-1]} == {35, 17}  # DARTS' search: no Gaussian jitter
    a, b, c = (StreamBatches({"weights": torch.zeros(2, 3000)}, 35, seed) for seed in (0, 0, 1))
    assert a.spans(0) == b.spans(0) != c.spans(0)
    assert a.spans(0) != a.spans(1)


def test_window_lr_scale_and_scaled_learning_rate(tmp_path: Path) -> None:
    dm = module(write_corpus(tmp_path))
    batch = epoch(dm, dm.train_dataloader(), stop=1)[0]
    assert window_lr_scale(batch) == batch["window"]["length"] / 6
    assert window_lr_scale({"weights": None}) == 1.0
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=20.0)
    param.grad = torch.ones(1)
    with scaled_learning_rate(optimizer, 0.5):
        assert optimizer.param_groups[0]["lr"] == 10.0
        optimizer.step()
    assert optimizer.param_groups[0]["lr"] == 20.0 and param.item() == -10.0


def test_architecture_split_advances_in_lockstep(tmp_path: Path) -> None:
    dm = module(write_corpus(tmp_path, lines=200), arch_split=0.5)
    dm.trainer = SimpleNamespace(lightning_module=SimpleNamespace(uses_architecture_split=True),
                                 global_rank=0, world_size=1)
    batches = epoch(dm, dm.train_dataloader())
    arch = batchify(dm.streams["arch"], 4)
    for b in batches:
        w = b["window"]
        assert b["arch"][0].shape == b["weights"][0].shape == (4, w["length"])
        assert torch.equal(b["arch"][0], arch[:, w["start"]:w["start"] + w["length"]])


def test_ddp_processes_read_disjoint_rows_of_the_same_windows(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, lines=200)
    parts = []
    for rank in range(2):
        dm = module(folder)
        dm.trainer = SimpleNamespace(lightning_module=None, global_rank=rank, world_size=2)
        parts.append(epoch(dm, dm.train_dataloader()))
    assert [b["window"] for b in parts[0]] == [b["window"] for b in parts[1]]
    data = batchify(module(folder).streams["weights"], 8)
    first = torch.cat([parts[0][0]["weights"][0], parts[1][0]["weights"][0]])
    assert torch.equal(first, data[:, :first.shape[1]])


def test_stream_position_resumes_exactly(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, lines=200)
    reference = module(folder)
    loader = reference.train_dataloader()
    epoch(reference, loader)  # epoch 0
    epoch1 = epoch(reference, loader)
    killed = module(folder)
    loader = killed.train_dataloader()
    epoch(killed, loader)
    epoch(killed, loader, stop=5)
    state = copy.deepcopy(killed._train_batches.state_dict())
    assert (state["epoch"], state["next_index"]) == (1, 5) and state["next_start"] == epoch1[5]["window"]["start"]
    resumed = module(folder)
    loader = resumed.train_dataloader()
    loader.load_state_dict(state)
    rest, epoch2 = epoch(resumed, loader), epoch(resumed, loader)
    assert [b["window"] for b in rest] == [b["window"] for b in epoch1[5:]]
    assert all(torch.equal(p["weights"][0], q["weights"][0]) for p, q in zip(rest, epoch1[5:], strict=True))
    assert epoch2[0]["window"]["epoch"] == 2 and epoch2[0]["window"]["first"]
    elsewhere = module(folder)  # resumed on two processes: same window, marked first (zero state)
    elsewhere.trainer = SimpleNamespace(lightning_module=None, global_rank=0, world_size=2)
    loader2 = elsewhere.train_dataloader()
    with pytest.warns(UserWarning, match="from a zero hidden state"):
        loader2.load_state_dict(state)
    moved = epoch(elsewhere, loader2, stop=2)
    assert [b["window"]["index"] for b in moved] == [5, 6] and [b["window"]["first"] for b in moved] == [True, False]
    assert moved[0]["window"]["start"] == epoch1[5]["window"]["start"]
    other = module(folder, bptt=7).train_dataloader()
    with pytest.raises(ValueError, match="does not match"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="stateless"):
        loader.load_state_dict({"epoch": 0, "next_index": 1})


# ------------------------------------------------------------------------------------------- model + data
def train(dm: PTBDataModule, net: DartsRNNNetwork, optimizer, loader, arch, stop: int | None = None) -> list[float]:
    """The loop a strategy runs: carried state (reset on the epoch's first window), AR/TAR, lr scaled
    by the window length, clipping 0.25."""
    losses = []
    for count, raw in enumerate(loader):
        batch = dm.on_after_batch_transfer(raw, 0)
        x, y = batch["weights"]
        with net.carrying("weights", reset=batch["window"]["first"]):
            loss = F.cross_entropy(net(x, arch), y)
            reg = net.regularisation_loss()
            loss = loss if reg is None else loss + reg
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.25)
        with scaled_learning_rate(optimizer, window_lr_scale(batch)):
            optimizer.step()
        losses.append(loss.item())
        if stop is not None and count + 1 == stop:
            break
    return losses


def test_training_killed_mid_epoch_resumes_bit_identically(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, lines=150)
    space = DartsRNNSpace(2)
    arch = space.parse("tanh~0|relu~1")
    options = dict(space=space, embedding_size=8, hidden_size=8, dropout=0.3, dropout_h=0.2, dropout_x=0.3,
                   dropout_embedding=0.1, ar=1.0, tar=1.0, seed=5)

    def fresh():
        dm = module(folder)
        torch.manual_seed(0)
        net = DartsRNNNetwork(num_classes=dm.num_classes, **options).train()
        return dm, net, torch.optim.SGD(net.parameters(), lr=2.0, weight_decay=1e-4), dm.train_dataloader()

    dm, net, opt, loader = fresh()
    reference = train(dm, net, opt, loader, arch) + train(dm, net, opt, loader, arch)
    dm, net, opt, loader = fresh()
    first = train(dm, net, opt, loader, arch)
    first += train(dm, net, opt, loader, arch, stop=4)
    checkpoint = copy.deepcopy({"net": net.state_dict(), "opt": opt.state_dict(), "data": loader.state_dict()})
    assert "weights" in checkpoint["net"]["_extra_state"]["hidden"]
    del dm, net, opt, loader  # kill -9
    dm, net, opt, loader = fresh()
    net.load_state_dict(checkpoint["net"])
    opt.load_state_dict(checkpoint["opt"])
    loader.load_state_dict(checkpoint["data"])
    resumed = first + train(dm, net, opt, loader, arch)
    assert resumed == reference


def test_stateful_training_carries_context_that_stateless_loses(tmp_path: Path) -> None:
    """On a corpus where the next word is predictable only from an earlier window, the carried state helps."""
    folder = tmp_path / "ptb"
    folder.mkdir()
    # alternating "a b c ... " runs: the token after each window boundary depends on the previous window
    words = [f"w{i % 7}" for i in range(4000)]
    for name in ("train.txt", "valid.txt", "test.txt"):
        (folder / name).write_text(" ".join(words) + " <unk>\n")
    space = DartsRNNSpace(2)
    arch = space.parse("tanh~0|identity~1")
    dm = module(folder, batch_size=2, bptt=3)
    net = DartsRNNNetwork(space=space, num_classes=dm.num_classes, embedding_size=8, hidden_size=8, seed=0).eval()
    x = batchify(dm.streams["val"], 2)[:, :30]
    with net.carrying("val", reset=True):
        carried = torch.cat([net(x[:, s:s + 3], arch).view(2, 3, -1) for s in range(0, 30, 3)], dim=1)
    stateless = torch.cat([net(x[:, s:s + 3], arch).view(2, 3, -1) for s in range(0, 30, 3)], dim=1)
    assert torch.equal(carried[:, :3], stateless[:, :3]) and not torch.equal(carried[:, 3:], stateless[:, 3:])


@pytest.mark.skipif(not (SHARED_DATA / "ptb-sample" / "valid.txt").is_file(), reason="ptb-sample not available")
def test_real_ptb_sample_stateful_epoch() -> None:
    dm = PTBDataModule(data_dir=str(SHARED_DATA / "ptb-sample"), train_file="test.txt", test_file=None,
                       batch_size=64, bptt=35)
    loader = dm.train_dataloader()
    lengths = [b["length"] for b in loader]
    assert sum(lengths) >= batchify(dm.streams["weights"], 64).shape[1] - 2
    assert abs(len(lengths) - loader.expected_windows()) < 0.1 * len(lengths)
