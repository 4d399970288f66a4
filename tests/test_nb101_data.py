"""The official NAS-Bench-101 data path: TFRecord framing, CRC-32C, rows, resumable conversion, the benchmark."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from lightning_nas.benchmarks.nasbench101 import (METRICS, NB101Benchmark, TFRecordError, convert, crc32c, encode_row,
                                                  read_records)
from lightning_nas.errors import GroundTruthError
from lightning_nas.spaces.nb101 import CONV1X1, CONV3X3, MAXPOOL3X3, NB101Cell


def _slow_crc32c(data: bytes) -> int:
    """Bit-by-bit CRC-32C, independent of the table-driven one under test."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = _slow_crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _write(path, payloads):
    """The official framing, written here independently of the package's writer."""
    with open(path, "wb") as f:
        for data in payloads:
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data)))


CELLS = [
    NB101Cell(((0, 1), (0, 0)), ("input", "output")),
    NB101Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", CONV3X3, "output")),
    NB101Cell(((0, 1, 1, 0), (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 0)), ("input", CONV1X1, MAXPOOL3X3, "output")),
]


def _rows():
    """3 cells x budgets (4, 108) x 3 repeats, cell-major like the official files; expected test accuracies."""
    rows, expected = [], {}
    for c, cell in enumerate(CELLS):
        adjacency = "".join(str(b) for row in cell.matrix for b in row)
        for epochs in (4, 108):
            accs = []
            for r in range(3):
                test = 0.5 + 0.1 * c + 0.01 * r + (0.2 if epochs == 108 else 0.0)
                accs.append(test)
                rows.append(encode_row(cell.hash, epochs, adjacency, ",".join(cell.ops), 1000 * (c + 1),
                                       (10.0 * epochs / 2, 0.9, test - 0.05, test - 0.01), (10.0 * epochs, 1.0, test - 0.02, test)))
            expected[(cell.hash, epochs)] = accs
    return rows, expected


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720, B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    data = bytes(range(256)) * 3 + b"tail"
    assert crc32c(data) == _slow_crc32c(data)


def test_reader_round_trips(tmp_path):
    rows, _ = _rows()
    path = tmp_path / "tiny.tfrecord"
    _write(path, rows)
    read = list(read_records(path))
    assert [d for _, _, d in read] == rows
    assert [i for i, _, _ in read] == list(range(len(rows)))
    # resuming at a returned offset continues with the next record
    index, offset, _ = read[4]
    assert [d for _, _, d in read_records(path, offset, index + 1)] == rows[5:]


def test_corrupt_and_truncated_files_name_the_record(tmp_path):
    rows, _ = _rows()
    path = tmp_path / "bad.tfrecord"
    _write(path, rows)
    raw = bytearray(path.read_bytes())
    offset = sum(16 + len(r) for r in rows[:2])  # record 2
    raw[offset + 12 + 5] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=r"record 2 at byte \d+ is corrupt"):
        list(read_records(path))
    _write(path, rows)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(TFRecordError, match=rf"record {len(rows) - 1} .* truncated"):
        list(read_records(path))
    with pytest.raises(GroundTruthError, match="record 0: not a NAS-Bench-101 row"):
        _write(path, [b"not json"])
        convert(path, tmp_path / "x.npz")


def test_conversion_resumes_and_benchmark_answers(tmp_path):
    rows, expected = _rows()
    path = tmp_path / "nb.tfrecord"
    _write(path, rows)
    cache = tmp_path / "nb.npz"
    assert convert(path, cache, chunk=4, max_parts=2) is False  # "interrupted" after 8 of 18 records
    assert not cache.exists() and (tmp_path / "nb.npz.partial" / "progress.json").exists()
    assert convert(path, cache, chunk=4) is True
    assert cache.exists() and not (tmp_path / "nb.npz.partial").exists()
    bench = NB101Benchmark(cache)
    assert len(bench) == 3
    for cell in CELLS:
        assert bench.query(cell) == pytest.approx(np.mean(expected[(cell.hash, 108)]), abs=1e-6)
        assert bench.query(cell.hash) == bench.query(cell)
    early = NB101Benchmark(cache, metric="validation_accuracy", epochs=4)
    assert early.query(CELLS[2]) == pytest.approx(np.mean(expected[(CELLS[2].hash, 4)]) - 0.02, abs=1e-6)
    rec = bench.record(CELLS[1])
    assert rec["matrix"] == [list(r) for r in CELLS[1].matrix] and rec["trainable_parameters"] == 2000
    assert sorted(rec["epochs"]) == [4, 108] and len(rec["epochs"][108]) == 3
    assert [r["final_test_accuracy"] for r in rec["epochs"][108]] == pytest.approx(expected[(CELLS[1].hash, 108)], abs=1e-6)
    assert set(rec["epochs"][4][0]) == set(METRICS)
    assert bench.rank(CELLS[2].hash) == 1 and bench.regret(CELLS[0].hash) == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(GroundTruthError, match="not in"):
        bench.query("0" * 32)
    # a .tfrecord path converts on first use, next to the file
    assert NB101Benchmark(path, cache=tmp_path / "again.npz").query(CELLS[0]) == bench.query(CELLS[0])


# ---------------------------------------------------------------------------------------- bad files, atomic cache
@pytest.mark.parametrize("content, expected", [
    (b"", "is empty (0 bytes, a failed download?)"),
    (b"<html><body>404 Not Found</body></html>\n", "is not a TFRecord file"),
    (bytes(range(256)) * 40, "is not a TFRecord file"),
], ids=["0-byte download", "an HTML error page", "binary junk"])
def test_empty_or_foreign_tfrecord_is_one_line_and_leaves_no_cache(tmp_path, content, expected):
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(content)
    for _ in range(2):  # and again: never a cache that the second call loads as a 0-cell benchmark
        with pytest.raises(GroundTruthError) as error:
            NB101Benchmark(path)
        message = str(error.value)
        assert "\n" not in message and str(path) in message and expected in message
        assert "nasbench_only108.tfrecord" in message.split("expected", 1)[1]  # says what the file should be
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no cache, no partial conversion


def test_a_cache_without_cells_or_of_another_kind_is_refused(tmp_path):
    empty = tmp_path / "empty.npz"
    np.savez(empty, hash=np.zeros(0, dtype="S32"), adjacency=np.zeros(0, dtype="S"), operations=np.zeros(0, dtype="S"),
             trainable_parameters=np.zeros(0, np.int64), cell=np.zeros(0, np.int32), epochs=np.zeros(0, np.int16),
             repeat=np.zeros(0, np.int8), metrics=np.zeros((0, len(METRICS)), np.float32))
    with pytest.raises(GroundTruthError, match="holds no cell"):
        NB101Benchmark(empty)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.ones(3))
    with pytest.raises(GroundTruthError, match=r"not a NAS-Bench-101 cache \(no hash, adjacency"):
        NB101Benchmark(other)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(GroundTruthError, match="not a readable .npz archive"):
        NB101Benchmark(junk)


def test_conversion_writes_atomically(tmp_path, monkeypatch):
    """Every part, progress.json and the cache are renamed into place from a sibling temporary file; a
    conversion killed at the final rename leaves no cache and resumes from its parts."""
    import os

    rows, _ = _rows()
    path = tmp_path / "nb.tfrecord"
    _write(path, rows)
    cache = tmp_path / "nb.npz"
    real, renames = os.replace, []

    def replace(src, dst):
        renames.append((Path(src).parent == Path(dst).parent, Path(src).name, Path(dst).name))
        if Path(dst) == cache:
            raise KeyboardInterrupt  # killed at the last moment
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        convert(path, cache, chunk=4)
    assert all(same_dir and src.startswith(f".{dst}.") and src.endswith(".tmp") for same_dir, src, dst in renames)
    assert [dst for _, _, dst in renames][:2] == ["part-00000.npz", "progress.json"]
    assert not cache.exists() and not list(tmp_path.glob(".nb.npz.*"))  # no cache, no temporary file
    monkeypatch.setattr(os, "replace", real)
    assert convert(path, cache, chunk=4) is True and len(NB101Benchmark(cache)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.npz", "nb.tfrecord"]
