"""TFRecord framing without TensorFlow: CRC-32C (Castagnoli), masked checksums, a streaming reader and a writer.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)``. The reader streams the
file (one record in memory at a time), can start at a byte offset (resumable conversion), and
raises ``TFRecordError`` naming the record index and byte offset for a bad checksum or a
truncated record. CRC-32C needs no package: ``crc32c`` is pure Python (slicing-by-8 over 64-bit
words, ~3.5 MB/s), and the reader checks a batch of records at once with ``crc32c_many`` (numpy, one
table lookup per byte position across all records of the batch, each left-padded with zeros
from a start state that the zero padding turns into the standard initial value).
"""
from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence, Union

import numpy as np

from lightning_nas.errors import GroundTruthError

_POLY = 0x82F63B78  # CRC-32C, reflected
_MASK_DELTA = 0xA282EAD8


class TFRecordError(GroundTruthError):
    """A corrupt or truncated TFRecord file; the message names the file, the record index and its byte offset."""


def _tables() -> list[list[int]]:
    t0 = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[n] >> 8) ^ t0[prev[n] & 0xFF] for n in range(256)])
    return tables


_T = _tables()


def crc32c(data: Union[bytes, bytearray, memoryview], crc: int = 0) -> int:
    """CRC-32C of ``data`` (continuing from ``crc``); ``crc32c(b"123456789") == 0xE3069283``."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T
    crc ^= 0xFFFFFFFF
    mv = memoryview(data).cast("B")
    n8 = len(mv) // 8 * 8
    if n8:
        for word in mv[:n8].cast("Q"):
            one = (word & 0xFFFFFFFF) ^ crc
            two = word >> 32
            crc = (t7[one & 0xFF] ^ t6[(one >> 8) & 0xFF] ^ t5[(one >> 16) & 0xFF] ^ t4[one >> 24]
                   ^ t3[two & 0xFF] ^ t2[(two >> 8) & 0xFF] ^ t1[(two >> 16) & 0xFF] ^ t0[two >> 24])
    for b in mv[n8:]:
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: Union[bytes, bytearray, memoryview]) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@lru_cache(maxsize=1)
def _numpy_tables() -> tuple[np.ndarray, np.ndarray]:
    table = np.array(_T[0], dtype=np.uint32)
    inverse_top = np.zeros(256, dtype=np.int64)
    inverse_top[table >> 24] = np.arange(256)  # the top byte of a CRC table entry identifies its index
    return table, inverse_top


@lru_cache(maxsize=None)
def _start_states(pad: int) -> np.ndarray:
    """``start[k]``: the state that k zero bytes turn into 0xFFFFFFFF (the zero-byte step inverted k times)."""
    table, inverse_top = _numpy_tables()
    states = [0xFFFFFFFF]
    for _ in range(pad):
        s = states[-1]
        idx = int(inverse_top[s >> 24])
        states.append((((s ^ int(table[idx])) << 8) | idx) & 0xFFFFFFFF)
    return np.array(states, dtype=np.uint32)


def crc32c_many(chunks: Sequence[bytes]) -> np.ndarray:
    """CRC-32C of every chunk at once (uint32 array); numpy over byte positions, chunks left-padded with zeros."""
    n = len(chunks)
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    table, _ = _numpy_tables()
    lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=n)
    width = int(lengths.max())
    buf = np.zeros((width, n), dtype=np.uint8)  # byte position major: each step reads one contiguous row
    flat = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    if flat.size:
        chunk = np.repeat(np.arange(n), lengths)
        first = np.repeat(np.cumsum(lengths) - lengths, lengths)
        buf[np.arange(flat.size) - first + np.repeat(width - lengths, lengths), chunk] = flat
    state = _start_states(width)[width - lengths]
    for position in buf:
        state = table[(state ^ position) & 0xFF] ^ (state >> 8)
    return state ^ np.uint32(0xFFFFFFFF)


def _masked_many(chunks: Sequence[bytes]) -> np.ndarray:
    crc = crc32c_many(chunks).astype(np.uint64)
    return ((((crc >> np.uint64(15)) | (crc << np.uint64(17))) + np.uint64(_MASK_DELTA)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def read_records(path: Union[str, Path], offset: int = 0, index: int = 0, verify: bool = True,
                 batch_bytes: int = 1 << 22) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(record index, offset of the next record, data)`` from byte ``offset`` (record ``index``) on.

    Records are read and checked in batches of about ``batch_bytes``; an error names the first bad
    record, after every good record before it has been yielded."""
    path = Path(path)
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            frames: list[tuple[int, int, bytes, bytes, int, int]] = []  # index, start, header, data, crc, next offset
            pending = None
            size = 0
            while size < batch_bytes:
                start = offset
                header = f.read(12)
                if not header:
                    break
                if len(header) < 12:
                    pending = TFRecordError(f"{path}: record {index} at byte {start} is truncated "
                                            f"(header of {len(header)} of 12 bytes)")
                    break
                (length,) = struct.unpack("<Q", header[:8])
                if verify and masked_crc32c(header[:8]) != struct.unpack("<I", header[8:])[0]:
                    pending = TFRecordError(f"{path}: record {index} at byte {start} has a corrupt length (CRC-32C mismatch)")
                    break
                body = f.read(length + 4)
                if len(body) < length + 4:
                    pending = TFRecordError(f"{path}: record {index} at byte {start} is truncated "
                                            f"({len(body)} of {length + 4} data and checksum bytes)")
                    break
                offset = start + 16 + length
                frames.append((index, start, header, body[:length], struct.unpack("<I", body[length:])[0], offset))
                size += length
                index += 1
            if verify and frames:
                expected = np.array([fr[4] for fr in frames], dtype=np.uint32)
                bad = np.flatnonzero(_masked_many([fr[3] for fr in frames]) != expected)
                if bad.size:
                    first = frames[int(bad[0])]
                    yield from ((i, nxt, data) for i, _, _, data, _, nxt in frames[:int(bad[0])])
                    raise TFRecordError(f"{path}: record {first[0]} at byte {first[1]} is corrupt (data CRC-32C mismatch)")
            for i, _, _, data, _, nxt in frames:
                yield i, nxt, data
            if pending is not None:
                raise pending
            if not frames:
                return


def write_record(f: BinaryIO, data: bytes) -> None:
    """Append one framed record (the official format)."""
    length = struct.pack("<Q", len(data))
    f.write(length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data)))
