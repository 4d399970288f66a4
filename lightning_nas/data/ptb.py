"""Penn Treebank (word level) as seeded, resumable windows of a token stream.

The preprocessed PTB of Mikolov et al. (the files every NAS paper uses: ``train.txt``,
``valid.txt``, ``test.txt``; one sentence per line, 10k-word vocabulary including ``<unk>`` and
``N``) is tokenised as in AWD-LSTM/DARTS: the words of each line plus ``<eos>``. The vocabulary
comes from the training file, in order of first occurrence. Each split's stream is cut into
``batch_size`` contiguous rows ("batchify"), and a step sees one window of ``bptt`` (35) time
steps of all rows, the targets being the inputs shifted by one token.

Two ways to read the training stream (``bptt_mode``):

- ``stateful`` (default; AWD-LSTM, DARTS, ENAS): the windows of an epoch follow each other in
  stream order, and the model carries its hidden state from one window into the next (detached),
  starting from zero at the epoch's first window (``batch["window"]["first"]``). The window length
  is drawn per window as in AWD-LSTM / DARTS: ``bptt`` with probability 0.95, ``bptt / 2``
  otherwise, plus N(0, ``length_jitter`` = 5) jitter (none in DARTS' search), at least 5 tokens, at most ``bptt + max_seq_len_delta``; the
  learning rate of that step is scaled by ``length / bptt`` (``window_lr_scale``). The lengths of
  epoch e come from a generator seeded by (seed, "bptt", e), so the position in the stream (epoch,
  window index, token offset), which Lightning checkpoints through the loader's ``state_dict``,
  determines the length generator's state too: a resumed run replays the same lengths.
- ``stateless``: fixed-length windows in a seeded random order per epoch, each from a zero state.
  Every batch is a pure function of (seed, epoch, index), so runs need no carried model state.
  Use it for cheap low-fidelity proxies and for super-net training where the carried state would
  mix architectures in a way you do not want to study; its perplexities are worse (no context
  beyond the window) and not comparable with published numbers.

Evaluation windows run in stream order with the fixed ``bptt`` in both modes; whether the hidden
state is carried across them is the strategy's choice (AWD-LSTM does so, starting from zero).

Only ``valid.txt`` and ``test.txt`` ship in ``../shared/data/ptb-sample``: the recipes there train
on ``test.txt`` (``train_file: test.txt``) and validate on ``valid.txt``, with no test split, and
words of ``valid.txt`` missing from that smaller vocabulary become ``<unk>``. Numbers from such
runs are not comparable with published PTB perplexities.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Optional

import torch

from lightning_nas.data.base import SeededDataModule
from lightning_nas.data.batches import SeededBatches
from lightning_nas.errors import DatasetError, RecipeError
from lightning_nas.seeding import generator

EOS, UNK = "<eos>", "<unk>"
SPLIT_KEYS = {"train": "train_file", "val": "val_file", "test": "test_file"}


def tokenize(path: Path, key: str = "data_dir") -> list[list[str]]:
    """Words of each line followed by ``<eos>`` (every line, as AWD-LSTM's ``Corpus`` does). A file that
    is not UTF-8 text (a binary file, an archive not unpacked) is a ``DatasetError`` naming ``data.KEY``."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.split() + [EOS] for line in handle]
    except UnicodeDecodeError as error:
        raise DatasetError(f"data.{key}: {path} is not UTF-8 text (byte {error.start}); expected the preprocessed "
                           "PTB text, one sentence per line") from None


def batchify(stream: torch.Tensor, rows: int) -> torch.Tensor:
    """(N,) -> (rows, N // rows): row r is the r-th contiguous chunk of the stream; the rest is dropped."""
    length = len(stream) // rows
    return stream[:rows * length].view(rows, length)


def windows(data: torch.Tensor, bptt: int, partial: bool = False) -> Iterator[tuple[int, int]]:
    """(start, length) of the windows of a batchified (rows, L) tensor; a target needs one more token."""
    start = 0
    while start + 1 < data.shape[1]:
        length = min(bptt, data.shape[1] - 1 - start)
        if length < bptt and not partial:
            return
        yield start, length
        start += length


def window_lengths(bptt: int, total: int, gen: torch.Generator, variable: bool = True,
                   max_seq_len_delta: Optional[int] = 20, min_length: int = 5,
                   jitter: float = 5.0) -> list[tuple[int, int]]:
    """(start, length) of the training windows over ``total`` columns (a target needs one more token).

    AWD-LSTM / DARTS ``train.py``: while ``start < total - 2``: base = bptt with probability 0.95,
    else bptt / 2; length = max(min_length, int(N(base, jitter))), capped at ``bptt +
    max_seq_len_delta`` (DARTS; None: no cap, AWD-LSTM) and at the tokens left. ``jitter=0``:
    length = int(base), DARTS' search (``train_search.py`` comments the Gaussian out).
    ``variable=False``: every window ``bptt`` long."""
    spans, start = [], 0
    while start < total - 2:
        if variable:
            base = bptt if float(torch.rand((), generator=gen)) < 0.95 else bptt / 2
            noise = jitter * float(torch.randn((), generator=gen)) if jitter else 0.0
            length = max(min_length, int(base + noise))
            if max_seq_len_delta is not None:
                length = min(length, bptt + max_seq_len_delta)
        else:
            length = bptt
        length = min(length, total - 1 - start)
        spans.append((start, length))
        start += length
    return spans


class StreamBatches:
    """Stateful training windows: every split's batchified stream read in order, once per epoch.

    Yields ``{"epoch", "index", "start", "length", <split>: {"images": x (B, T), "labels": y (B, T)}}``;
    splits (weights and architecture data) advance in lockstep with the same window lengths, and
    an epoch ends when the shortest split does. No ``__len__``: the number of windows varies per
    epoch, so Lightning runs validation when the iterator is exhausted.
    """

    def __init__(self, data: Mapping[str, torch.Tensor], bptt: int, seed: int, variable: bool = True,
                 max_seq_len_delta: Optional[int] = 20, jitter: float = 5.0, world_size: int = 1) -> None:
        self.data = dict(data)
        self.bptt, self.seed, self.variable, self.max_seq_len_delta = bptt, seed, variable, max_seq_len_delta
        self.jitter, self.world_size = jitter, world_size
        self._restart_state = False  # the first window after a resume on another process count starts from zero
        self.columns = min(d.shape[1] for d in self.data.values())
        self.epoch = -1
        self._next_index = 0
        self._resume: tuple[int, int, int] | None = None

    def spans(self, epoch: int) -> list[tuple[int, int]]:
        """The windows of ``epoch``: a function of (seed, epoch) only."""
        return window_lengths(self.bptt, self.columns, generator(self.seed, "bptt", epoch), self.variable,
                              self.max_seq_len_delta, jitter=self.jitter)

    def expected_windows(self) -> float:
        """Mean number of windows per epoch (for progress estimates)."""
        mean = 0.95 * self.bptt + 0.05 * self.bptt / 2 if self.variable else self.bptt
        return (self.columns - 1) / mean

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._resume is not None:
            epoch, start, offset = self._resume
            self._resume = None
            spans = self.spans(max(epoch, 0))
            if epoch >= 0 and start < len(spans) and spans[start][0] != offset:
                raise RecipeError(f"the checkpointed stream position (window {start} at token {offset}) does not match "
                                 "this run's windows: data.bptt, batch_size or the corpus changed")
            if start >= len(spans) or epoch < 0:
                epoch, start = epoch + 1, 0
        else:
            epoch, start = self.epoch + 1, 0
        self.epoch, self._next_index = epoch, start
        spans = self.spans(epoch)
        restart, self._restart_state = self._restart_state, False
        for i in range(start, len(spans)):
            s, n = spans[i]
            batch: dict[str, Any] = {"epoch": epoch, "index": i, "start": s, "length": n,
                                     "first": i == 0 or (restart and i == start)}
            for name, data in self.data.items():
                batch[name] = {"images": data[:, s:s + n], "labels": data[:, s + 1:s + 1 + n]}
            yield batch

    def mark_consumed(self, epoch: int, index: int) -> None:
        self.epoch, self._next_index = epoch, index + 1

    def state_dict(self) -> dict[str, Any]:
        spans = self.spans(self.epoch) if self.epoch >= 0 else []
        offset = spans[self._next_index][0] if self._next_index < len(spans) else self.columns
        return {"mode": "stateful", "epoch": self.epoch, "next_index": self._next_index, "next_start": offset,
                "seed": self.seed, "bptt": self.bptt, "world_size": self.world_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("mode") != "stateful":
            raise RecipeError("the checkpoint was written with data.bptt_mode: stateless; resume with the same mode")
        if state.get("seed", self.seed) != self.seed or state.get("bptt", self.bptt) != self.bptt:
            raise RecipeError(f"checkpointed stream (seed {state.get('seed')}, bptt {state.get('bptt')}) does not match "
                             f"this run (seed {self.seed}, bptt {self.bptt})")
        self.epoch, self._next_index = int(state["epoch"]), int(state["next_index"])
        self._resume = (self.epoch, self._next_index, int(state.get("next_start", 0)))
        if int(state.get("world_size", self.world_size)) != self.world_size:
            # The windows are the same on any number of processes, but the rows each process reads are
            # not: the carried hidden states belong to other rows now. Continue at the same window and
            # mark it ``first`` so that the model starts it from zero.
            from pytorch_lightning.utilities import rank_zero_warn

            self._restart_state = True
            rank_zero_warn(f"resuming stateful BPTT of {state['world_size']} process(es) on {self.world_size}: the "
                           "stream continues at the same window, from a zero hidden state")


def window_lr_scale(batch: Mapping[str, Any]) -> float:
    """AWD-LSTM's learning-rate factor for a training batch: ``length / bptt`` of its window (1 for
    stateless batches, which have no ``window``)."""
    window = batch.get("window") if isinstance(batch, Mapping) else None
    return 1.0 if not window else window["length"] / window["bptt"]


def scale_learning_rate(optimizer: torch.optim.Optimizer, factor: float) -> list[float]:
    """Multiply every param group's ``lr`` by ``factor``; returns the rates to restore afterwards
    (AWD-LSTM's ``lr2 = lr; lr = lr2 * seq_len / bptt; step; lr = lr2``)."""
    saved = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
    return saved


def restore_learning_rate(optimizer: torch.optim.Optimizer, saved: list[float]) -> None:
    for group, lr in zip(optimizer.param_groups, saved, strict=True):
        group["lr"] = lr


@contextmanager
def scaled_learning_rate(optimizer: torch.optim.Optimizer, factor: float) -> Iterator[None]:
    """``scale_learning_rate`` for the steps inside, restored afterwards (a loop of one's own; under
    Lightning the ``callbacks.asgd.WindowLearningRate`` callback does the same around each step)."""
    saved = scale_learning_rate(optimizer, factor)
    try:
        yield
    finally:
        restore_learning_rate(optimizer, saved)


class WindowEvalBatches:
    """Windows of one split in stream order: ``(x (B, T), y (B*T,))``, the last one possibly shorter."""

    def __init__(self, data: torch.Tensor, bptt: int, rank: int = 0, world_size: int = 1) -> None:
        self.data, self.bptt = data, bptt
        self.spans = list(windows(data, bptt, partial=True))[rank::world_size]

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start, length in self.spans:
            yield self.data[:, start:start + length], self.data[:, start + 1:start + 1 + length].reshape(-1)


class PTBDataModule(SeededDataModule):
    """Args:
        data_dir: the folder with the three text files.
        train_file, val_file, test_file: file names inside ``data_dir`` (``test_file: null``: no test
            split). The vocabulary is built from ``train_file``.
        batch_size: rows of the training stream, i.e. sequences per step (DARTS searches with 256,
            Li & Talwalkar also with 64). ``eval_batch_size``: rows for validation/test (10, as
            AWD-LSTM and DARTS).
        bptt: base time steps per window (35, DARTS/ENAS); stateful windows vary around it.
        bptt_mode: ``stateful`` (default: stream order, carried hidden state, AWD-LSTM's variable
            length) or ``stateless`` (fixed windows in a seeded random order, zero state); see the
            module docstring for when to use which.
        variable_length: stateful windows draw their length (AWD-LSTM); False keeps ``bptt``.
        max_seq_len_delta: cap of a stateful window at ``bptt + max_seq_len_delta`` (DARTS: 20;
            null: uncapped, AWD-LSTM).
        length_jitter: standard deviation of the window length's Gaussian jitter (AWD-LSTM and
            DARTS' final training: 5; DARTS' search: 0, i.e. 35 or 17 tokens).
        arch_split: fraction of the training stream (its end) kept apart for architecture updates
            of bi-level strategies (DARTS, ENAS); 0 for SPOS.
        oov: a word of the validation/test file missing from the vocabulary becomes ``<unk>``
            (``unk``, needs ``<unk>`` in the training file) or is an error (``error``).
        train_tokens: train on the first N tokens of the training file only (null: all of it, as
            before); the vocabulary is then built from those N tokens. Why: a cheaper low-fidelity
            protocol (e.g. a ground-truth table of many architectures) that trains more epochs on a
            shorter stream, where every epoch costs in proportion to the tokens read.
        vocabulary_size: keep only the K most frequent words of the training tokens (``<unk>``
            included and always kept; ties: first occurrence), every other word of every split
            becomes ``<unk>`` (null: no cap, as before). Why: the decoder and softmax over the
            vocabulary dominate the cost of a small language model (hidden size 16-32), and rare
            words are what a few epochs cannot learn; a capped vocabulary makes a small model
            converge in fewer, cheaper steps. Its perplexities are not comparable with uncapped ones.
        seed: the run seed (linked from ``seed_everything``); orders the training windows.
    """

    def __init__(self, data_dir: str = "data/ptb", train_file: str = "train.txt", val_file: str = "valid.txt",
                 test_file: Optional[str] = "test.txt", batch_size: int = 64, eval_batch_size: int = 10,
                 bptt: int = 35, arch_split: float = 0.0, oov: Literal["unk", "error"] = "unk", seed: int = 0,
                 bptt_mode: Literal["stateful", "stateless"] = "stateful", variable_length: bool = True,
                 max_seq_len_delta: Optional[int] = 20, length_jitter: float = 5.0,
                 train_tokens: Optional[int] = None, vocabulary_size: Optional[int] = None) -> None:
        super().__init__()
        if train_tokens is not None and (isinstance(train_tokens, bool) or not isinstance(train_tokens, int)
                                         or train_tokens < 2):
            raise RecipeError(f"data.train_tokens must be an integer >= 2 or null (all tokens), got {train_tokens!r}")
        if vocabulary_size is not None and (isinstance(vocabulary_size, bool) or not isinstance(vocabulary_size, int)
                                            or vocabulary_size < 2):
            raise RecipeError(f"data.vocabulary_size must be an integer >= 2 (<unk> and at least one word) or null "
                              f"(no cap), got {vocabulary_size!r}")
        self.train_tokens, self.vocabulary_size = train_tokens, vocabulary_size
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size), ("bptt", bptt)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecipeError(f"data.{key} must be a positive integer, got {value!r}")
        if not 0 <= arch_split < 1:
            raise RecipeError(f"data.arch_split must be a fraction in [0, 1), got {arch_split}")
        if oov not in ("unk", "error"):
            raise RecipeError(f"data.oov must be 'unk' or 'error', got {oov!r}")
        if bptt_mode not in ("stateful", "stateless"):
            raise RecipeError(f"data.bptt_mode must be 'stateful' or 'stateless', got {bptt_mode!r}")
        if max_seq_len_delta is not None and max_seq_len_delta < 0:
            raise RecipeError(f"data.max_seq_len_delta must be >= 0 or null, got {max_seq_len_delta}")
        if length_jitter < 0:
            raise RecipeError(f"data.length_jitter must be >= 0, got {length_jitter}")
        self.bptt_mode, self.variable_length, self.max_seq_len_delta = bptt_mode, variable_length, max_seq_len_delta
        self.length_jitter = length_jitter
        self.data_dir, self.oov, self.seed = Path(data_dir), oov, seed
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        self.batch_size, self.eval_batch_size, self.bptt = batch_size, eval_batch_size, bptt
        self.arch_split = arch_split
        self._streams: dict[str, torch.Tensor] | None = None
        self.vocabulary: list[str] = []
        self.word_ids: dict[str, int] = {}
        self.capped_words: set[str] = set()

    # ---------------------------------------------------------------- corpus
    def _path(self, split: str) -> Path:
        name = self.files[split]
        expected = ", ".join(f"{SPLIT_KEYS[s]}={n}" for s, n in self.files.items() if n)
        if not self.data_dir.is_dir():
            raise DatasetError(f"data.data_dir {self.data_dir.resolve()} does not exist; expected a folder with "
                                    f"the preprocessed PTB files ({expected})")
        path = self.data_dir / name
        if not path.is_file():
            present = ", ".join(sorted(p.name for p in self.data_dir.iterdir() if p.is_file())) or "none"
            raise DatasetError(f"data.{SPLIT_KEYS[split]}: {path.resolve()} not found; expected {expected} in "
                                    f"{self.data_dir} (files there: {present})")
        return path

    def _encode(self, split: str) -> torch.Tensor:
        path = self._path(split)
        lines = tokenize(path, SPLIT_KEYS[split])
        if not any(len(words) > 1 for words in lines):
            raise DatasetError(f"data.{SPLIT_KEYS[split]}: {path} holds no words (empty corpus); expected the "
                               "preprocessed PTB text, one sentence per line")
        if split == "train":
            lines = self._truncated(lines, path)
            counts: dict[str, int] = {}
            for words in lines:
                for word in words:
                    counts[word] = counts.get(word, 0) + 1
            kept = list(counts)  # first-occurrence order
            if self.vocabulary_size is not None and len(kept) > self.vocabulary_size:
                order = {word: i for i, word in enumerate(kept)}
                frequent = sorted((w for w in kept if w != UNK), key=lambda w: (-counts[w], order[w]))
                chosen = set(frequent[:self.vocabulary_size - 1]) | {UNK}
                kept = [w for w in kept if w in chosen] + ([UNK] if UNK not in counts else [])
            self.word_ids = {word: i for i, word in enumerate(kept)}
            self.vocabulary = kept
            self.capped_words = set(counts) - set(kept)
        unk = self.word_ids.get(UNK)
        ids = []
        for number, words in enumerate(lines, start=1):
            for word in words:
                index = self.word_ids.get(word)
                if index is None:
                    if word in self.capped_words:  # a training word the vocabulary cap dropped, in any split
                        ids.append(unk)
                        continue
                    if self.oov == "error" or unk is None:
                        why = ("set data.oov: unk to map such words to <unk>" if unk is not None else
                               f"the training file has no {UNK} to map it to")
                        raise RecipeError(f"{path}:{number}: word {word!r} is not in the vocabulary of "
                                         f"{self.files['train']} ({len(self.word_ids)} words); {why}")
                    index = unk
                ids.append(index)
        return torch.tensor(ids, dtype=torch.long)

    def _truncated(self, lines: list[list[str]], path: Path) -> list[list[str]]:
        """The first ``train_tokens`` tokens of the tokenised training file (all without the option)."""
        if self.train_tokens is None:
            return lines
        total = sum(len(words) for words in lines)
        if self.train_tokens > total:
            raise RecipeError(f"data.train_tokens={self.train_tokens} exceeds the {total} tokens of {path}; lower it "
                              "or set it to null (all tokens)")
        kept, left = [], self.train_tokens
        for words in lines:
            if left <= 0:
                break
            kept.append(words[:left])
            left -= len(kept[-1])
        return kept

    @property
    def streams(self) -> dict[str, torch.Tensor]:
        """Token ids of each split: ``weights`` and ``arch`` (the training stream), ``val``, ``test``."""
        if self._streams is None:
            train = self._encode("train")
            streams = {"val": self._encode("val")}
            if self.files["test"]:
                streams["test"] = self._encode("test")
            n_arch = int(round(self.arch_split * len(train)))
            streams["weights"], streams["arch"] = train[:len(train) - n_arch], train[len(train) - n_arch:]
            self._streams = streams
        return self._streams

    @property
    def num_classes(self) -> int:
        """The vocabulary size: the decoder's output classes."""
        self.streams  # noqa: B018 - the vocabulary is built with the streams
        return len(self.vocabulary)

    @property
    def in_channels(self) -> int:
        """Unused by language models; 1 so that the CLI's link from the DataModule works unchanged."""
        return 1

    def setup(self, stage: str | None = None) -> None:
        self.streams  # noqa: B018

    def _batchified(self, split: str, rows: int, full_windows: int = 1) -> torch.Tensor:
        stream = self.streams.get(split)
        if stream is None:
            raise RecipeError(f"there is no {split} split: set data.{SPLIT_KEYS.get(split, 'arch_split')}")
        data = batchify(stream, rows)
        if data.shape[1] < full_windows * self.bptt + 1:
            raise RecipeError(
                f"the {split} stream has {len(stream)} tokens, too few for {full_windows} window(s) of "
                f"{rows} rows x (bptt={self.bptt} + 1) tokens: lower data.batch_size or data.bptt, "
                "or use a longer corpus")
        return data

    # ---------------------------------------------------------------- loaders
    @property
    def has_test(self) -> bool:
        """Whether there is a test split (``test_file`` set): the CLI should skip ``trainer.test`` otherwise."""
        return bool(self.files["test"])

    @property
    def stateful(self) -> bool:
        """Whether the model should carry its hidden state across windows (training and evaluation)."""
        return self.bptt_mode == "stateful"

    def train_dataloader(self) -> SeededBatches | StreamBatches:
        names = self.training_splits(has_arch_split=self.arch_split != 0)
        rank, world = self._rank()
        if self.stateful:
            # every process reads its own block of rows of the same windows
            data = {}
            for name in names:
                rows = self._batchified(name, self.batch_size * world)
                data[name] = rows[rank * self.batch_size:(rank + 1) * self.batch_size]
            self._train_batches = StreamBatches(data, self.bptt, self.seed, self.variable_length,
                                                self.max_seq_len_delta, self.length_jitter, world)
            return self._train_batches
        # Windows become the "images" of SeededBatches, one window per step: (windows, B, bptt)
        inputs, targets, splits, offset = [], [], {}, 0
        for name in names:
            data = self._batchified(name, self.batch_size, full_windows=world)
            spans = list(windows(data, self.bptt))
            inputs += [data[:, s:s + n] for s, n in spans]
            targets += [data[:, s + 1:s + 1 + n] for s, n in spans]
            splits[name] = torch.arange(offset, offset + len(spans))
            offset += len(spans)
        self._train_batches = SeededBatches(torch.stack(inputs), torch.stack(targets), splits, 1, self.seed,
                                            rank, world)
        return self.continue_epochs(self._train_batches)

    def val_dataloader(self) -> WindowEvalBatches:
        rank, world = self._rank()
        return WindowEvalBatches(self._batchified("val", self.eval_batch_size), self.bptt, rank, world)

    def test_dataloader(self) -> WindowEvalBatches:
        rank, world = self._rank()
        return WindowEvalBatches(self._batchified("test", self.eval_batch_size), self.bptt, rank, world)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Training: ``{split: (x (B, T), y (B*T,))}``, the position marked consumed; stateful batches
        add ``window = {epoch, index, start, length, bptt, first}`` (``first``: reset the carried
        state). Evaluation: as is."""
        if isinstance(batch, dict) and "epoch" in batch:
            self.mark_consumed(batch)
            if "length" in batch:
                out: dict[str, Any] = {name: (part["images"], part["labels"].reshape(-1))
                                       for name, part in batch.items() if isinstance(part, dict)}
                out["window"] = {"epoch": batch["epoch"], "index": batch["index"], "start": batch["start"],
                                 "length": batch["length"], "bptt": self.bptt,
                                 "first": bool(batch.get("first", batch["index"] == 0))}
                return out
            return {name: (part["images"][0], part["labels"][0].reshape(-1))
                    for name, part in batch.items() if isinstance(part, dict)}
        return batch

    def split_batches(self, split: str, device: torch.device | str = "cpu", limit: int | None = None,
                      batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Windows of a split (``val``, ``test``, ``weights``, ``arch``) in stream order, for scoring
        outside the fit loop; ``batch_size`` rows (default ``eval_batch_size``)."""
        if split not in ("val", "test", "weights", "arch"):
            raise ValueError(f"unknown split {split!r}; PTB has val, test, weights and arch")
        data = self._batchified(split, batch_size or self.eval_batch_size)
        for count, (x, y) in enumerate(WindowEvalBatches(data, self.bptt)):
            if limit is not None and count >= limit:
                return
            yield x.to(device), y.to(device)
