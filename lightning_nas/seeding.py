"""One run seed, many independent random streams.

Every consumer of randomness (split permutation, epoch order, augmentation of one batch,
architecture sampling, ranking sample) gets its own generator seeded from the run seed and a
name, so adding a consumer never shifts the numbers another one sees, and a stream can be
re-created from (seed, name, epoch, step) alone, which is what makes resumption exact.
"""
from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed determined by ``seed`` and ``keys`` (stable across processes and platforms)."""
    text = "/".join([str(int(seed))] + [str(k) for k in keys])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def rank_seed(seed: int, rank: int) -> int:
    """The seed of DDP process ``rank``'s own stream of a consumer seeded with ``seed`` (dropout masks:
    each process draws its own). Rank 0 keeps ``seed``, so a one-process run draws what it always drew."""
    return int(seed) if rank == 0 else derive_seed(seed, "rank", rank)


def generator(seed: int, *keys: object, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, *keys))
    return gen
