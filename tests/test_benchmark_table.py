"""CSVBenchmark: queries, ranks with ties, best and regret, errors that name what is wrong."""
from __future__ import annotations

from pathlib import Path

import pytest

from lightning_nas.benchmarks.base import GroundTruthError
from lightning_nas.benchmarks.csv_table import CSVBenchmark
from lightning_nas.spaces.nb201 import NB201Architecture

ROWS = [("a", 90.0), ("b", 93.5), ("c", 91.0), ("d", 93.5), ("e", 85.25)]


def _write(path: Path, rows=ROWS, header="ArchitectureString,Accuracy,Other", comment: bool = True) -> Path:
    lines = (["# written by the test"] if comment else []) + [header]
    lines += [f"{key},{value},x" for key, value in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def table(tmp_path) -> CSVBenchmark:
    return CSVBenchmark(str(_write(tmp_path / "t.csv")), metric="Accuracy")


def test_query_best_regret(table):
    assert len(table) == 5
    assert table.query("c") == 91.0
    assert "c" in table and "z" not in table
    assert table.best() == 93.5
    assert table.regret("c") == pytest.approx(2.5)
    assert table.regret("b") == 0.0
    assert table.table() == dict(ROWS)


def test_query_by_architecture_object(tmp_path):
    arch = NB201Architecture(("nor_conv_3x3",) * 6)
    path = tmp_path / "arch.csv"
    path.write_text(f"ArchitectureString,Accuracy\n{arch},77.5\n")
    assert CSVBenchmark(str(path), metric="Accuracy").query(arch) == 77.5


def test_rank_ties_share_the_best_rank(table):
    assert table.rank("b") == table.rank("d") == 1
    assert table.rank("c") == 3  # two strictly better
    assert table.rank("a") == 4
    assert table.rank("e") == 5


def test_lower_is_better(tmp_path):
    errors = CSVBenchmark(str(_write(tmp_path / "t.csv")), metric="Accuracy", higher_is_better=False)
    assert errors.best() == 85.25
    assert errors.rank("e") == 1
    assert errors.rank("a") == 2
    assert errors.rank("c") == 3
    assert errors.rank("b") == errors.rank("d") == 4
    assert errors.regret("c") == pytest.approx(91.0 - 85.25)
    assert errors.regret("e") == 0.0


def test_unknown_architecture(table):
    with pytest.raises(GroundTruthError, match="'?zzz'? is not in the Accuracy table"):
        table.query("zzz")
    with pytest.raises(GroundTruthError):
        table.rank("zzz")


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.csv"
    with pytest.raises(GroundTruthError, match="absent.csv does not exist"):
        CSVBenchmark(str(path))


@pytest.mark.parametrize("metric, key, missing", [
    ("Nope", "ArchitectureString", "Nope"),
    ("Accuracy", "Arch", "Arch"),
])
def test_missing_column_names_the_column(tmp_path, metric, key, missing):
    bench = CSVBenchmark(str(_write(tmp_path / "t.csv")), metric=metric, key_column=key)
    with pytest.raises(GroundTruthError) as info:
        bench.table()
    message = str(info.value)
    assert f"column {missing!r} is not in" in message
    assert "ArchitectureString, Accuracy, Other" in message  # lists the columns that exist


def test_non_numeric_value_names_the_line(tmp_path):
    rows = ROWS[:2] + [("bad", "ninety")] + ROWS[2:]
    bench = CSVBenchmark(str(_write(tmp_path / "t.csv", rows=rows, comment=False)), metric="Accuracy")
    # line 1 is the header, so the third data row is line 4
    with pytest.raises(GroundTruthError, match=r"t\.csv:4: Accuracy='ninety' is not a number"):
        bench.table()


def test_nan_and_empty_tables(tmp_path):
    bench = CSVBenchmark(str(_write(tmp_path / "nan.csv", rows=[("a", "nan")], comment=False)), metric="Accuracy")
    with pytest.raises(GroundTruthError, match="nan.csv:2: Accuracy is NaN"):
        bench.table()
    empty = CSVBenchmark(str(_write(tmp_path / "empty.csv", rows=[])), metric="Accuracy")
    with pytest.raises(GroundTruthError, match="holds no architectures"):
        empty.table()


def test_real_nb201_table(nb201_table):
    bench = CSVBenchmark(str(nb201_table))
    assert len(bench) == 15_625
    assert round(bench.best(), 2) == 94.37
    best = max(bench.table(), key=bench.table().__getitem__)
    assert bench.rank(best) == 1
    assert bench.regret(best) == 0.0
    # every architecture of the space is in the table, keyed by its text form
    arch = NB201Architecture.from_string(best)
    assert bench.query(arch) == bench.best()
    assert bench.rank(NB201Architecture(("none",) * 6)) > 15_000  # 10% accuracy: among the worst
