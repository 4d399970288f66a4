"""NAO's encoder, performance predictor and decoder (Luo et al., "Neural Architecture Optimization",
NeurIPS 2018, Sec. 3), over the token sequence of a space's decisions.

An architecture is the sequence of its picks, decision by decision (``Tokens``: a choice that takes
k inputs contributes its k sorted picks); token ids are offset per choice, so the same option index
of two choices is two tokens, as NAO's vocabulary separates node and operation tokens.

- ``Encoder`` (Sec. 3.1): embedding + LSTM; the embedding of x is the sequence of its hidden states
  e_x = {h_1, ..., h_T}, each L2-normalised as the authors' code does (``NAO_V1/encoder.py``).
- ``Predictor`` (Sec. 3.2): an MLP on the normalised mean of e_x, a sigmoid output
  f(x) in [0, 1] (targets are the pool's scores min-max normalised).
- ``Decoder`` (Sec. 3.3): an LSTM started from the pooled embedding, with attention over e_x
  (the authors' dot-product attention with input and output projections), emitting one token per
  position, restricted to the options of that position's decision and, within a choice of k picks,
  to strictly increasing picks: every decoded sequence names k distinct sorted options per choice.
- ``EncoderPredictorDecoder.loss``: the joint objective (Sec. 3.4, Eq. 1),
  L = lambda * L_pp + (1 - lambda) * L_rec, with L_pp the predictor's squared error and L_rec the
  decoder's negative log-likelihood of the sequence under teacher forcing.
- ``EncoderPredictorDecoder.improve``: the search step (Sec. 3.4, Eq. 3),
  h_t' = h_t + eta * d f / d h_t, re-normalised, then decoded greedily.

Randomness (the predictor's dropout) is drawn from a generator passed in, never from the global
stream: the strategy's seeded architecture generator, saved in checkpoints and identical on every
DDP rank.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_nas.spaces.decisions import Choice, Picks


class Tokens:
    """The token layout of a tuple of choices: position -> (choice, pick within the choice), and
    the block of token ids each choice owns."""

    def __init__(self, choices: Sequence[Choice]) -> None:
        self.choices = tuple(choices)
        self.offsets: list[int] = []
        self.positions: list[tuple[int, int]] = []  # (choice index, k-th pick)
        total = 0
        for c, choice in enumerate(self.choices):
            self.offsets.append(total)
            total += len(choice)
            self.positions += [(c, k) for k in range(choice.pick)]
        self.vocabulary = total
        self.length = len(self.positions)

    def encode(self, picks: Sequence[Picks]) -> torch.Tensor:
        """(batch, length) token ids of a batch of picks."""
        rows = [[self.offsets[c] + i for c, chosen in enumerate(p) for i in sorted(chosen)] for p in picks]
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), self.length)

    def decode(self, tokens: torch.Tensor) -> list[Picks]:
        """Picks of (batch, length) token ids (ids out of a choice's block raise IndexError)."""
        result = []
        for row in tokens.tolist():
            picks: list[list[int]] = [[] for _ in self.choices]
            for (c, _), token in zip(self.positions, row, strict=True):
                index = token - self.offsets[c]
                if not 0 <= index < len(self.choices[c]):
                    raise IndexError(f"token {token} is outside choice {self.choices[c].label!r}")
                picks[c].append(index)
            result.append(tuple(tuple(sorted(p)) for p in picks))
        return result

    def allowed(self, position: int, previous: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        """(batch, vocabulary) mask of the tokens position ``position`` may emit: the options of its
        choice, above the previous pick of the same choice, leaving room for the picks still to come."""
        c, k = self.positions[position]
        n, pick, offset = len(self.choices[c]), self.choices[c].pick, self.offsets[c]
        ids = torch.arange(self.vocabulary, device=previous.device if previous is not None else None)
        low = torch.full((batch,), offset, dtype=torch.long, device=ids.device)
        if k > 0 and previous is not None:
            low = previous + 1
        high = offset + n - (pick - k - 1)  # exclusive
        return (ids.unsqueeze(0) >= low.unsqueeze(1)) & (ids.unsqueeze(0) < high)


def _dropout(x: torch.Tensor, p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Inverted dropout with masks from ``generator`` (none without one, e.g. at inference)."""
    if generator is None or p <= 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=generator.device).to(x.device) >= p
    return x * keep / (1 - p)


class Encoder(nn.Module):
    """Token embedding + LSTM; returns the normalised hidden states and their normalised mean."""

    def __init__(self, vocabulary: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, _ = self.lstm(self.embedding(tokens))
        outputs = F.normalize(outputs, 2, dim=-1)
        return outputs, pool(outputs)


def pool(outputs: torch.Tensor) -> torch.Tensor:
    """The architecture embedding fed to the predictor and the decoder: the L2-normalised mean of
    the (normalised) hidden states (authors' ``Encoder.forward``)."""
    return F.normalize(outputs.mean(dim=1), 2, dim=-1)


class Predictor(nn.Module):
    """``layers`` ReLU layers of ``hidden`` units with dropout, a linear output and a sigmoid."""

    def __init__(self, inputs: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        sizes = [inputs] + [hidden] * layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.output = nn.Linear(sizes[-1], 1)
        self.dropout = dropout

    def forward(self, embedding: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        x = embedding
        for layer in self.layers:
            x = _dropout(F.relu(layer(x)), self.dropout, generator)
        return torch.sigmoid(self.output(x)).squeeze(-1)


class Attention(nn.Module):
    """Dot-product attention of decoder states over the encoder's states; the mix and the state
    are combined by a tanh projection (Luong et al. 2015; the authors' ``decoder.Attention``)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)

    def forward(self, state: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(torch.bmm(self.query(state), source.transpose(1, 2)), dim=-1)
        return torch.tanh(self.combine(torch.cat((torch.bmm(weights, source), state), dim=-1)))


class Decoder(nn.Module):
    """An LSTM whose hidden and cell states start as the pooled embedding (every layer), fed the
    previous token (a learned start token first), attending over the encoder's states."""

    def __init__(self, tokens: Tokens, hidden: int, layers: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.layers = layers
        self.start = nn.Parameter(torch.zeros(1, 1, hidden))
        self.embedding = nn.Embedding(tokens.vocabulary, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.attention = Attention(hidden)
        self.head = nn.Linear(hidden, tokens.vocabulary)

    def forward(self, embedding: torch.Tensor, source: torch.Tensor,
                targets: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities (batch, length, vocabulary) over allowed tokens and the emitted tokens:
        the targets' under teacher forcing, else the greedy arg-max of each position."""
        batch = embedding.shape[0]
        state = embedding.unsqueeze(0).repeat(self.layers, 1, 1).contiguous()
        hidden = (state, state)
        inputs = self.start.expand(batch, 1, -1)
        log_probs, emitted = [], []
        previous: Optional[torch.Tensor] = None
        for t in range(self.tokens.length):
            out, hidden = self.lstm(inputs, hidden)
            logits = self.head(self.attention(out, source)).squeeze(1)
            mask = self.tokens.allowed(t, previous, batch).to(logits.device)
            log_p = F.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
            token = targets[:, t] if targets is not None else log_p.argmax(-1)
            log_probs.append(log_p)
            emitted.append(token)
            same_choice = t + 1 < self.tokens.length and self.tokens.positions[t + 1][0] == self.tokens.positions[t][0]
            previous = token if same_choice else None
            inputs = self.embedding(token).unsqueeze(1)
        return torch.stack(log_probs, 1), torch.stack(emitted, 1)


@dataclass
class Losses:
    total: torch.Tensor
    mse: torch.Tensor
    nll: torch.Tensor


class EncoderPredictorDecoder(nn.Module):
    """The three parts of NAO, trained jointly (``loss``) and used to propose better sequences (``improve``)."""

    def __init__(self, choices: Sequence[Choice], hidden: int = 96, layers: int = 1, mlp_hidden: int = 200,
                 mlp_layers: int = 3, mlp_dropout: float = 0.1) -> None:
        super().__init__()
        self.tokens = Tokens(choices)
        self.encoder = Encoder(self.tokens.vocabulary, hidden, layers)
        self.predictor = Predictor(hidden, mlp_hidden, mlp_layers, mlp_dropout)
        self.decoder = Decoder(self.tokens, hidden, layers)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor, trade_off: float,
             generator: Optional[torch.Generator] = None) -> Losses:
        """Eq. 1 of Luo et al.: trade_off * MSE(f(x), s_x) + (1 - trade_off) * NLL of x given e_x."""
        source, embedding = self.encoder(tokens)
        mse = F.mse_loss(self.predictor(embedding, generator), targets)
        log_probs, _ = self.decoder(embedding, source, tokens)
        nll = F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), tokens.reshape(-1))
        return Losses(trade_off * mse + (1 - trade_off) * nll, mse, nll)

    @torch.no_grad()
    def reconstruct(self, tokens: torch.Tensor) -> torch.Tensor:
        """Greedy decoding of the sequences' own embeddings (what the reconstruction loss trains)."""
        source, embedding = self.encoder(tokens)
        return self.decoder(embedding, source)[1]

    def improve(self, tokens: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One gradient step of size ``eta`` on the predictor, in embedding space (Eq. 3):
        (decoded tokens, f before, f after). The step is taken on every hidden state h_t, the states
        re-normalised and re-pooled, as the authors' ``Encoder.infer`` does."""
        with torch.enable_grad():
            source, embedding = self.encoder(tokens)
            before = self.predictor(embedding)
            (gradient,) = torch.autograd.grad(before.sum(), source)
        with torch.no_grad():
            moved = F.normalize(source + eta * gradient, 2, dim=-1)
            moved_embedding = pool(moved)
            after = self.predictor(moved_embedding)
            decoded = self.decoder(moved_embedding, moved)[1]
        return decoded, before.detach(), after
