"""Penn Treebank (word level) as seeded, resumable windows of a token stream.

The preprocessed PTB of Mikolov et al. (the files every NAS paper uses: ``train.txt``,
``valid.txt``, ``test.txt``; one sentence per line, 10k-word vocabulary including ``<unk>`` and
``N``) is tokenised as in AWD-LSTM/DARTS: the words of each line plus ``<eos>``. The vocabulary
comes from the training file, in order of first occurrence. Each split's stream is cut into
``batch_size`` contiguous rows ("batchify"), and a step sees one window of ``bptt`` (35) time
steps of all rows, the targets being the inputs shifted by one token.

Deliberate difference from DARTS/ENAS training: the hidden state starts at zero in every window
(stateless truncated BPTT) instead of being carried from the previous window, and windows are
visited in a seeded random order per epoch instead of in stream order, with a fixed ``bptt``. A
batch is then a pure function of (seed, epoch, index), which is what makes resumption exact with
the same ``SeededBatches`` machinery as the image data; the price is a slightly worse perplexity
(no context beyond the window's own start). Evaluation windows run in stream order, also from
a zero state.

Only ``valid.txt`` and ``test.txt`` ship in ``../shared/data/ptb-sample``: the recipes there train
on ``test.txt`` (``train_file: test.txt``) and validate on ``valid.txt``, with no test split, and
words of ``valid.txt`` missing from that smaller vocabulary become ``<unk>``. Numbers from such
runs are not comparable with published PTB perplexities.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import torch

from lightning_nas.data.base import SeededDataModule
from lightning_nas.data.batches import SeededBatches

EOS, UNK = "<eos>", "<unk>"
SPLIT_KEYS = {"train": "train_file", "val": "val_file", "test": "test_file"}


def tokenize(path: Path) -> list[list[str]]:
    """Words of each line followed by ``<eos>`` (every line, as AWD-LSTM's ``Corpus`` does)."""
    with open(path, encoding="utf-8") as handle:
        return [line.split() + [EOS] for line in handle]


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
        bptt: time steps per window (35, DARTS/ENAS; fixed here, not DARTS' randomised length).
        arch_split: fraction of the training stream (its end) kept apart for architecture updates
            of bi-level strategies (DARTS, ENAS); 0 for SPOS.
        oov: a word of the validation/test file missing from the vocabulary becomes ``<unk>``
            (``unk``, needs ``<unk>`` in the training file) or is an error (``error``).
        seed: the run seed (linked from ``seed_everything``); orders the training windows.
    """

    def __init__(self, data_dir: str = "data/ptb", train_file: str = "train.txt", val_file: str = "valid.txt",
                 test_file: Optional[str] = "test.txt", batch_size: int = 64, eval_batch_size: int = 10,
                 bptt: int = 35, arch_split: float = 0.0, oov: Literal["unk", "error"] = "unk", seed: int = 0) -> None:
        super().__init__()
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size), ("bptt", bptt)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{key} must be a positive integer, got {value!r}")
        if not 0 <= arch_split < 1:
            raise ValueError(f"data.arch_split must be a fraction in [0, 1), got {arch_split}")
        if oov not in ("unk", "error"):
            raise ValueError(f"data.oov must be 'unk' or 'error', got {oov!r}")
        self.data_dir, self.oov, self.seed = Path(data_dir), oov, seed
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        self.batch_size, self.eval_batch_size, self.bptt = batch_size, eval_batch_size, bptt
        self.arch_split = arch_split
        self._streams: dict[str, torch.Tensor] | None = None
        self.vocabulary: list[str] = []
        self.word_ids: dict[str, int] = {}

    # ---------------------------------------------------------------- corpus
    def _path(self, split: str) -> Path:
        name = self.files[split]
        expected = ", ".join(f"{SPLIT_KEYS[s]}={n}" for s, n in self.files.items() if n)
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"data.data_dir {self.data_dir.resolve()} does not exist; expected a folder with "
                                    f"the preprocessed PTB files ({expected})")
        path = self.data_dir / name
        if not path.is_file():
            present = ", ".join(sorted(p.name for p in self.data_dir.iterdir() if p.is_file())) or "none"
            raise FileNotFoundError(f"data.{SPLIT_KEYS[split]}: {path.resolve()} not found; expected {expected} in "
                                    f"{self.data_dir} (files there: {present})")
        return path

    def _encode(self, split: str) -> torch.Tensor:
        path = self._path(split)
        lines = tokenize(path)
        if not any(len(words) > 1 for words in lines):
            raise ValueError(f"data.{SPLIT_KEYS[split]}: {path} holds no words (empty corpus)")
        if split == "train":
            for words in lines:
                for word in words:
                    self.word_ids.setdefault(word, len(self.word_ids))
            self.vocabulary = list(self.word_ids)
        unk = self.word_ids.get(UNK)
        ids = []
        for number, words in enumerate(lines, start=1):
            for word in words:
                index = self.word_ids.get(word)
                if index is None:
                    if self.oov == "error" or unk is None:
                        why = ("set data.oov: unk to map such words to <unk>" if unk is not None else
                               f"the training file has no {UNK} to map it to")
                        raise ValueError(f"{path}:{number}: word {word!r} is not in the vocabulary of "
                                         f"{self.files['train']} ({len(self.word_ids)} words); {why}")
                    index = unk
                ids.append(index)
        return torch.tensor(ids, dtype=torch.long)

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
            raise ValueError(f"there is no {split} split: set data.{SPLIT_KEYS.get(split, 'arch_split')}")
        data = batchify(stream, rows)
        if data.shape[1] < full_windows * self.bptt + 1:
            raise ValueError(
                f"the {split} stream has {len(stream)} tokens, too few for {full_windows} window(s) of "
                f"{rows} rows x (bptt={self.bptt} + 1) tokens: lower data.batch_size or data.bptt, "
                "or use a longer corpus")
        return data

    # ---------------------------------------------------------------- loaders
    def train_dataloader(self) -> SeededBatches:
        names = self.training_splits(has_arch_split=self.arch_split != 0)
        rank, world = self._rank()
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
        return self._train_batches

    def val_dataloader(self) -> WindowEvalBatches:
        rank, world = self._rank()
        return WindowEvalBatches(self._batchified("val", self.eval_batch_size), self.bptt, rank, world)

    def test_dataloader(self) -> WindowEvalBatches:
        rank, world = self._rank()
        return WindowEvalBatches(self._batchified("test", self.eval_batch_size), self.bptt, rank, world)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Training: ``{split: (x (B, T), y (B*T,))}``, the position marked consumed; evaluation: as is."""
        if isinstance(batch, dict) and "epoch" in batch:
            self.mark_consumed(batch)
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
