"""Penn Treebank data (on tiny corpora the tests write), loss-oriented ranking and selection, and an
end-to-end SPOS run on the 2-node RNN space."""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import SHARED_DATA, run_train
from lightning_nas.benchmarks import CSVBenchmark
from lightning_nas.data import PTBDataModule
from lightning_nas.data.ptb import batchify
from lightning_nas.errors import DatasetError, RecipeError
from lightning_nas.scoring import Score
from lightning_nas.spaces import DartsRNNSpace


def write_corpus(folder: Path, lines: int = 120, seed: int = 0, names=("train.txt", "valid.txt", "test.txt")) -> Path:
    """Random sentences over a 30-word vocabulary plus ``<unk>`` and ``N`` (the PTB conventions)."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(30)] + ["<unk>", "N"]
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        count = lines if k == 0 else lines // 3
        text = "".join(" " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + " \n"
                       for _ in range(count))
        (folder / name).write_text(text)
    return folder


def module(folder: Path, **options) -> PTBDataModule:
    """Stateless windows (the stateful default is tested in test_rnn_stateful.py)."""
    config = dict(data_dir=str(folder), batch_size=4, eval_batch_size=3, bptt=5, seed=0, bptt_mode="stateless")
    config.update(options)
    return PTBDataModule(**config)


def train_batches(dm: PTBDataModule, loader, stop: int | None = None) -> list[dict]:
    """One epoch of prepared training batches, as the fit loop sees them (marking each consumed)."""
    out = []
    for batch in loader:
        out.append({"epoch": batch["epoch"], "index": batch["index"], **dm.on_after_batch_transfer(batch, 0)})
        if stop is not None and len(out) == stop:
            break
    return out


# ------------------------------------------------------------------------------------------- corpus
def test_vocabulary_comes_from_the_training_file_with_eos_per_line(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(" a b c \n b c d \n\n <unk> a \n")
    (tmp_path / "valid.txt").write_text(" a d \n zzz b \n")
    (tmp_path / "test.txt").write_text(" d a \n")
    dm = module(tmp_path)
    assert dm.vocabulary == [] and dm.num_classes == 6 and dm.in_channels == 1
    assert dm.vocabulary == ["a", "b", "c", "<eos>", "d", "<unk>"]
    # every line, the empty one too, ends with <eos> (AWD-LSTM's tokenisation)
    assert dm.streams["weights"].tolist() == [0, 1, 2, 3, 1, 2, 4, 3, 3, 5, 0, 3]
    assert dm.streams["val"].tolist() == [0, 4, 3, 5, 1, 3]  # zzz -> <unk>
    assert dm.streams["test"].tolist() == [4, 0, 3]
    with pytest.raises(ValueError, match=r"valid.txt:2: word 'zzz' is not in the vocabulary of train.txt"):
        _ = module(tmp_path, oov="error").num_classes
    (tmp_path / "train.txt").write_text(" a b c \n b c d \n")
    with pytest.raises(ValueError, match="has no <unk> to map it to"):
        _ = module(tmp_path).num_classes


def test_other_file_names_and_no_test_split(tmp_path: Path) -> None:
    write_corpus(tmp_path, names=("test.txt", "valid.txt"))
    dm = module(tmp_path, train_file="test.txt", test_file=None)
    assert set(dm.streams) == {"weights", "arch", "val"}
    assert len(dm.streams["weights"]) == sum(len(line.split()) + 1 for line in (tmp_path / "test.txt").open())
    with pytest.raises(ValueError, match="no test split: set data.test_file"):
        dm.test_dataloader()


def test_train_tokens_trains_on_the_first_tokens_and_builds_the_vocabulary_from_them(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(" a b c \n b c d \n <unk> e \n")
    (tmp_path / "valid.txt").write_text(" a d e \n")
    (tmp_path / "test.txt").write_text(" d \n")
    full = module(tmp_path)
    assert module(tmp_path, train_tokens=None).streams["weights"].tolist() == full.streams["weights"].tolist()
    dm = module(tmp_path, train_tokens=6)  # a b c <eos> b c: cut inside the second line
    assert dm._encode("train").tolist() == [0, 1, 2, 3, 1, 2]
    assert dm.vocabulary == ["a", "b", "c", "<eos>"]
    with pytest.raises(RecipeError, match="has no <unk> to map it to"):  # d, e are unknown now; no <unk> yet
        _ = dm.streams
    dm = module(tmp_path, train_tokens=10)  # everything but the last <eos>
    assert dm.streams["weights"].tolist() == full.streams["weights"].tolist()[:10]
    assert dm.streams["val"].tolist() == [0, 4, 6, 3]  # e (after <unk>) in the vocabulary
    dm = module(tmp_path, train_tokens=9)  # up to <unk>: e is unknown and becomes <unk>
    assert dm.streams["val"].tolist() == [0, 4, 5, 3]
    assert module(tmp_path, train_tokens=11).streams["weights"].tolist() == full.streams["weights"].tolist()
    with pytest.raises(RecipeError, match=r"data.train_tokens=12 exceeds the 11 tokens of .*train.txt"):
        _ = module(tmp_path, train_tokens=12).streams
    for bad in (0, 1, -5, 2.5, True, "100"):
        with pytest.raises(RecipeError, match=r"^data.train_tokens must be an integer >= 2 or null"):
            module(tmp_path, train_tokens=bad)


def test_vocabulary_size_keeps_the_most_frequent_words_and_maps_the_rest_to_unk(tmp_path: Path) -> None:
    # counts: x 4, <eos> 3, y 2, z 2 (z first seen after y), w 1, <unk> 1
    (tmp_path / "train.txt").write_text(" x w y x \n z y x \n x z <unk> \n")
    (tmp_path / "valid.txt").write_text(" w y z q \n")
    (tmp_path / "test.txt").write_text(" x \n")
    def vocabulary(**options) -> list[str]:
        dm = module(tmp_path, **options)
        dm.streams  # noqa: B018 - builds the vocabulary
        return dm.vocabulary

    assert vocabulary(vocabulary_size=None) == vocabulary() == ["x", "w", "y", "<eos>", "z", "<unk>"]
    assert vocabulary(vocabulary_size=6) == vocabulary()  # no cap needed
    dm = module(tmp_path, vocabulary_size=4)  # x, <eos>, y (tie with z: first seen) and <unk>
    assert dm.num_classes == 4 and dm.vocabulary == ["x", "y", "<eos>", "<unk>"]
    x, y, eos, unk = range(4)
    assert dm.streams["weights"].tolist() == [x, unk, y, x, eos, unk, y, x, eos, x, unk, unk, eos]
    assert dm.streams["val"].tolist() == [unk, y, unk, unk, eos]  # capped w, z and unknown q
    # a capped training word is <unk> in validation even with oov: error; a word never seen is still an error
    with pytest.raises(RecipeError, match=r"valid.txt:1: word 'q' is not in the vocabulary"):
        _ = module(tmp_path, vocabulary_size=4, oov="error").streams
    (tmp_path / "valid.txt").write_text(" w y z \n")
    assert module(tmp_path, vocabulary_size=4, oov="error").streams["val"].tolist() == [unk, y, unk, eos]
    # without <unk> in the training file the cap adds it (it counts towards the size)
    (tmp_path / "train.txt").write_text(" x w y x \n z y x \n")
    (tmp_path / "valid.txt").write_text(" x y \n")
    assert vocabulary(vocabulary_size=3) == ["x", "y", "<unk>"]  # y ties with <eos>, seen first
    # combined with train_tokens: frequencies of the kept tokens only
    (tmp_path / "train.txt").write_text(" w w v \n x x x x x \n <unk> \n")
    assert vocabulary(train_tokens=4, vocabulary_size=2) == ["w", "<unk>"]
    for bad in (0, 1, 2.0, False):
        with pytest.raises(RecipeError, match=r"^data.vocabulary_size must be an integer >= 2"):
            module(tmp_path, vocabulary_size=bad)


def test_batchify_and_window_targets_are_the_inputs_shifted_by_one(tmp_path: Path) -> None:
    dm = module(write_corpus(tmp_path))
    stream = dm.streams["weights"]
    data = batchify(stream, 4)
    length = len(stream) // 4
    assert data.shape == (4, length)
    for r in range(4):
        assert torch.equal(data[r], stream[r * length:(r + 1) * length])  # rows are contiguous chunks
    loader = dm.train_dataloader()
    assert len(loader) == (length - 1) // 5
    starts = []
    for batch in train_batches(dm, loader):
        x, y = batch["weights"]
        assert x.shape == (4, 5) and y.shape == (20,) and x.dtype == y.dtype == torch.long
        start = next(s for s in range(0, length - 5, 5) if torch.equal(data[:, s:s + 5], x))
        assert torch.equal(y, data[:, start + 1:start + 6].reshape(-1))
        assert torch.equal(y.view(4, 5)[:, :-1], x[:, 1:])
        starts.append(start)
    assert sorted(starts) == list(range(0, 5 * len(loader), 5))  # every full window once per epoch
    assert starts != sorted(starts)  # in a seeded random order


def test_evaluation_windows_cover_the_split_in_order(tmp_path: Path) -> None:
    dm = module(write_corpus(tmp_path))
    data = batchify(dm.streams["val"], 3)
    batches = list(dm.split_batches("val"))
    assert sum(y.numel() for _, y in batches) == 3 * (data.shape[1] - 1)
    assert torch.equal(torch.cat([x for x, _ in batches], dim=1), data[:, :-1])
    assert torch.equal(torch.cat([y.view(3, -1) for _, y in batches], dim=1), data[:, 1:])
    assert all(x.shape[1] == 5 for x, _ in batches[:-1])
    assert len(list(dm.split_batches("val", limit=2))) == 2
    assert [x.shape[0] for x, _ in dm.split_batches("weights", batch_size=4, limit=1)] == [4]
    assert len(dm.val_dataloader()) == len(batches)


def test_order_is_deterministic_per_seed_and_epoch(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path)
    a, b, c = module(folder), module(folder), module(folder, seed=1)
    la, lb, lc = a.train_dataloader(), b.train_dataloader(), c.train_dataloader()
    first_a, first_b, first_c = train_batches(a, la), train_batches(b, lb), train_batches(c, lc)
    second_a = train_batches(a, la)
    key = [batch["weights"][0] for batch in first_a]
    assert all(torch.equal(p, q["weights"][0]) for p, q in zip(key, first_b, strict=True))
    assert not all(torch.equal(p, q["weights"][0]) for p, q in zip(key, first_c, strict=True))
    assert not all(torch.equal(p, q["weights"][0]) for p, q in zip(key, second_a, strict=True))
    assert [batch["epoch"] for batch in second_a] == [1] * len(second_a)


def test_resume_continues_with_the_next_unconsumed_window(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path)
    reference = module(folder)
    loader = reference.train_dataloader()
    epoch0, epoch1 = train_batches(reference, loader), train_batches(reference, loader)
    killed = module(folder)
    loader = killed.train_dataloader()
    train_batches(killed, loader)
    train_batches(killed, loader, stop=7)  # epoch 1, batches 0..6 consumed
    state = killed._train_batches.state_dict()
    assert state["epoch"] == 1 and state["next_index"] == 7
    resumed = module(folder)
    loader = resumed.train_dataloader()
    loader.load_state_dict(state)
    rest, epoch2 = train_batches(resumed, loader), train_batches(resumed, loader)
    assert [(b["epoch"], b["index"]) for b in rest] == [(1, i) for i in range(7, len(epoch1))]
    assert all(torch.equal(p["weights"][1], q["weights"][1]) for p, q in zip(rest, epoch1[7:], strict=True))
    assert epoch2[0]["epoch"] == 2 and len(epoch0) == len(epoch2)


def test_architecture_split_is_the_end_of_the_training_stream(tmp_path: Path) -> None:
    dm = module(write_corpus(tmp_path), arch_split=0.25)
    train = torch.cat([dm.streams["weights"], dm.streams["arch"]])
    assert len(dm.streams["arch"]) == round(0.25 * len(train))
    dm.trainer = SimpleNamespace(lightning_module=SimpleNamespace(uses_architecture_split=True),
                                 global_rank=0, world_size=1)
    batch = train_batches(dm, dm.train_dataloader(), stop=1)[0]
    assert set(batch) == {"epoch", "index", "weights", "arch"}
    arch_data = batchify(dm.streams["arch"], 4)
    x = batch["arch"][0]
    assert any(torch.equal(arch_data[:, s:s + 5], x) for s in range(arch_data.shape[1] - 5))
    no_split = module(tmp_path)
    no_split.trainer = dm.trainer
    with pytest.raises(ValueError, match="set data.arch_split"):
        no_split.train_dataloader()


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no_such_folder does not exist; expected .*train_file=train.txt"):
        _ = module(tmp_path / "no_such_folder").num_classes
    write_corpus(tmp_path, names=("valid.txt", "test.txt"))
    with pytest.raises(DatasetError, match=r"data.train_file: .*train.txt not found.*there: test.txt, valid.txt"):
        _ = module(tmp_path).num_classes
    (tmp_path / "train.txt").write_text("\n\n")
    with pytest.raises(DatasetError, match="holds no words"):
        _ = module(tmp_path).num_classes
    write_corpus(tmp_path, lines=6)
    with pytest.raises(ValueError, match=r"too few for 1 window.*lower data.batch_size or data.bptt"):
        module(tmp_path, batch_size=16, bptt=35).train_dataloader()
    (tmp_path / "train.txt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DatasetError, match=r"data.train_file: .*train.txt is not UTF-8 text"):
        _ = module(tmp_path).num_classes
    with pytest.raises(RecipeError, match="data.bptt must be a positive integer, got 0"):
        module(tmp_path, bptt=0)
    with pytest.raises(RecipeError, match="arch_split"):
        module(tmp_path, arch_split=1.0)


@pytest.mark.skipif(not (SHARED_DATA / "ptb-sample" / "valid.txt").is_file(), reason="ptb-sample not available")
def test_real_ptb_sample_reads() -> None:
    dm = PTBDataModule(data_dir=str(SHARED_DATA / "ptb-sample"), train_file="test.txt", test_file=None)
    assert 5000 < dm.num_classes <= 10000 and "<unk>" in dm.vocabulary and "N" in dm.vocabulary
    x, y = next(dm.split_batches("val"))
    assert x.shape == (10, 35) and y.shape == (350,)


# ------------------------------------------------------------------------------------------- lower-is-better ranking
def loss_of(arch) -> float:
    """A made-up super-net validation loss per architecture (distinct values)."""
    return 4.0 + (list(DartsRNNSpace(2).enumerate()).index(arch) * 7 % 32) / 10


@pytest.fixture
def perplexity_table(tmp_path: Path) -> CSVBenchmark:
    """Ground-truth perplexity (lower is better) in the same order as the super-net losses."""
    path = tmp_path / "truth.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ArchitectureString", "val_perplexity"])
        for arch in DartsRNNSpace(2).enumerate():
            writer.writerow([str(arch), math.exp(loss_of(arch))])
    return CSVBenchmark(str(path), metric="val_perplexity", higher_is_better=False)


def fake_scoring(monkeypatch, target: str, accuracy) -> None:
    monkeypatch.setattr(f"{target}.evaluation_batches", lambda *args, **kwargs: [])
    monkeypatch.setattr(f"{target}.score_architectures", lambda strategy, archs, *args, **kwargs: [
        Score(accuracy=accuracy(a), loss=loss_of(a), samples=10) for a in archs])


def fake_run(tmp_path: Path):
    space = DartsRNNSpace(2)
    strategy = SimpleNamespace(hparams=SimpleNamespace(seed=0), space=space, device="cpu", answer="selection",
                               has_policy=False,
                               candidate_architectures=lambda count, gen: space.sample_many(count, gen),
                               derive_architecture=lambda: None)
    return SimpleNamespace(current_epoch=0, default_root_dir=str(tmp_path / "run")), strategy


@pytest.mark.parametrize("score", ["loss", "accuracy"])
def test_kendall_tau_aligns_a_lower_is_better_ground_truth(score, perplexity_table, monkeypatch, tmp_path) -> None:
    from callbacks.ranking import WeightSharingRanking

    # accuracy anti-correlated with the loss: both scores agree perfectly with the ground truth
    fake_scoring(monkeypatch, "callbacks.ranking", lambda a: 50.0 - loss_of(a))
    trainer, strategy = fake_run(tmp_path)
    callback = WeightSharingRanking(num_architectures=32, score=score, benchmark=perplexity_table)
    metrics = callback.evaluate(trainer, strategy)
    assert metrics["kendall_tau"] == pytest.approx(1.0) and metrics["spearman"] == pytest.approx(1.0)
    assert metrics["sparse_kendall_tau"] > 0.9
    best3 = sorted(math.exp(loss_of(a)) for a in DartsRNNSpace(2).enumerate())[:3]
    assert metrics["top3_ground_truth"] == pytest.approx(sum(best3) / 3)
    rows = list(csv.DictReader((tmp_path / "run" / "ranking" / "epoch_000.csv").open()))
    assert len(rows) == 32 and float(rows[0]["supernet_loss"]) == pytest.approx(loss_of(DartsRNNSpace(2).parse(
        rows[0]["architecture"])), abs=1e-4)


def test_ranking_by_loss_differs_from_ranking_by_accuracy(perplexity_table, monkeypatch, tmp_path) -> None:
    from callbacks.ranking import WeightSharingRanking

    fake_scoring(monkeypatch, "callbacks.ranking", lambda a: loss_of(a))  # "accuracy" in the wrong direction
    trainer, strategy = fake_run(tmp_path)
    by_accuracy = WeightSharingRanking(num_architectures=32, benchmark=perplexity_table).evaluate(trainer, strategy)
    by_loss = WeightSharingRanking(num_architectures=32, score="loss", benchmark=perplexity_table).evaluate(trainer,
                                                                                                          strategy)
    assert by_accuracy["kendall_tau"] == pytest.approx(-1.0) and by_loss["kendall_tau"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ranking.score"):
        WeightSharingRanking(score="perplexity")


@pytest.mark.parametrize("score", ["loss", "accuracy"])
def test_final_selection_by_loss_picks_the_lowest_loss(score, perplexity_table, monkeypatch, tmp_path) -> None:
    from callbacks.final_selection import FinalSelection

    fake_scoring(monkeypatch, "callbacks.final_selection", lambda a: loss_of(a))  # highest accuracy = worst loss
    trainer, strategy = fake_run(tmp_path)
    result = FinalSelection(num_architectures=32, top_k=5, score=score, benchmark=perplexity_table).select(
        trainer, strategy)
    archs = list(DartsRNNSpace(2).enumerate())
    best = min(archs, key=loss_of) if score == "loss" else max(archs, key=loss_of)
    assert result["architecture"] == str(best) and result["score"] == score
    assert result["rank"] == (1 if score == "loss" else 32)
    assert result["supernet_val_loss"] == pytest.approx(loss_of(best))


# ------------------------------------------------------------------------------------------- end to end
RECIPE = """
seed_everything: 0
trainer: {{max_epochs: 1, accelerator: cpu, devices: 1, enable_progress_bar: false, enable_model_summary: false,
          log_every_n_steps: 1, gradient_clip_val: 0.25}}
model:
  class_path: lightning_nas.strategies.SPOS
  init_args:
    space: darts_rnn
    space_options: {{num_nodes: 2}}
    network: {{num_nodes: 2, embedding_size: 8, hidden_size: 8}}
    optimizer: {{lr: 5.0, momentum: 0.0, nesterov: false, schedule: constant}}
data:
  class_path: lightning_nas.data.PTBDataModule
  init_args: {{data_dir: {data}, train_file: test.txt, val_file: valid.txt, test_file: null, batch_size: 4,
              eval_batch_size: 4, bptt: 5}}
benchmark:
  class_path: lightning_nas.benchmarks.CSVBenchmark
  init_args: {{path: {table}, metric: val_perplexity, higher_is_better: false}}
ranking: {{num_architectures: 8, num_batches: 2, score: loss}}
selection: {{num_architectures: 8, num_batches: 2, top_k: 2, score: loss}}
checkpoint_every_n_steps: 20
"""


def test_spos_on_the_two_node_space_runs_end_to_end(perplexity_table, tmp_path: Path) -> None:
    data = write_corpus(tmp_path / "ptb", lines=60, names=("test.txt", "valid.txt"))
    recipe = tmp_path / "rnn.yaml"
    recipe.write_text(RECIPE.format(data=data, table=perplexity_table.path))
    assert run_train(["--recipe", recipe, "--run_dir", tmp_path / "run"], cwd=tmp_path) == 0
    selection = json.loads((tmp_path / "run" / "selection.json").read_text())
    arch = DartsRNNSpace(2).parse(selection["architecture"])
    assert selection["score"] == "loss" and math.isfinite(selection["supernet_val_loss"])
    assert selection["rank"] == perplexity_table.rank(DartsRNNSpace(2).key(arch)) and selection["table_size"] == 32
    assert len(selection["finalists"]) == 2
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    taus = [float(r["ranking/kendall_tau"]) for r in rows if r.get("ranking/kendall_tau")]
    assert len(taus) == 1 and -1 <= taus[0] <= 1
    losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
    assert losses[0] == pytest.approx(math.log(33), abs=0.2)  # near uniform over 30 words, <unk>, N, <eos>


# ------------------------------------------------------------------------------------------- tabulation
def test_tabulate_trains_rnn_architectures_into_a_lower_is_better_table(tmp_path: Path) -> None:
    from lightning_nas.benchmarks import TabulatedBenchmark
    from lightning_nas.tabulate import build_parser, tabulate

    data = write_corpus(tmp_path / "ptb", lines=40, names=("test.txt", "valid.txt"))
    options = {"class_path": "lightning_nas.data.PTBDataModule",
               "init_args": {"data_dir": str(data), "train_file": "test.txt", "val_file": "valid.txt",
                             "test_file": None, "batch_size": 4, "eval_batch_size": 4, "bptt": 5}}
    out = tmp_path / "table.csv"
    config = build_parser().parse_args([
        "--space", "darts_rnn", "--space_options", '{"num_nodes": 2}', "--architectures", "4", "--seeds", "[0, 1]",
        "--max_epochs", "1", "--evaluate", "[val]", "--out", str(out), "--data", json.dumps(options),
        "--model", '{"network": {"num_nodes": 2, "embedding_size": 8, "hidden_size": 8}, "lr": 5.0, '
                   '"momentum": 0.0, "nesterov": false}'])
    tabulate(config, log=lambda _: None)
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    for row in rows:
        DartsRNNSpace(2).parse(row["ArchitectureString"])
        seeds = [float(row["val_loss_seed0"]), float(row["val_loss_seed1"])]
        assert seeds[0] != seeds[1] and float(row["val_loss_mean"]) == pytest.approx(sum(seeds) / 2, abs=1e-5)
        assert 2.0 < float(row["val_loss_mean"]) < math.log(33) + 0.3  # one epoch learns the word frequencies
    table = TabulatedBenchmark(str(out), metric="val_loss_mean", higher_is_better=False)
    best = min(rows, key=lambda r: float(r["val_loss_mean"]))["ArchitectureString"]
    assert table.rank(best) == 1 and table.regret(best) == 0
    bad = dict(options, init_args={**options["init_args"], "val_split": 0.2})
    with pytest.raises(Exception, match=r"data.val_split: unknown option.*bptt"):
        tabulate(build_parser().parse_args(["--space", "darts_rnn", "--out", str(tmp_path / "x.csv"),
                                            "--data", json.dumps(bad)]), log=lambda _: None)


def test_spos_on_ptb_stopped_mid_epoch_resumes_exactly(perplexity_table, tmp_path: Path) -> None:
    """Stateless windows + the checkpointed position: the resumed run's losses are the uninterrupted run's."""
    data = write_corpus(tmp_path / "ptb", lines=60, names=("test.txt", "valid.txt"))
    recipe = tmp_path / "rnn.yaml"
    text = RECIPE.format(data=data, table=perplexity_table.path).replace("max_epochs: 1", "max_epochs: 2")
    recipe.write_text(text.replace("checkpoint_every_n_steps: 20", "checkpoint_every_n_steps: 7"))
    off = ["--ranking.num_architectures", "0", "--selection.num_architectures", "0"]

    def losses(run: Path) -> dict[int, str]:
        with (run / "metrics.csv").open() as handle:
            return {int(r["step"]): r["train/loss_step"] for r in csv.DictReader(handle) if r["train/loss_step"]}

    assert run_train(["--recipe", recipe, "--run_dir", tmp_path / "a", *off], cwd=tmp_path) == 0
    assert run_train(["--recipe", recipe, "--run_dir", tmp_path / "b", "--trainer.max_steps", "7", *off],
                     cwd=tmp_path) == 0
    assert max(losses(tmp_path / "b")) < 7
    assert run_train(["--resume", tmp_path / "b", "--trainer.max_steps", "-1"], cwd=tmp_path) == 0
    reference, resumed = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(reference) > 20 and resumed == reference
