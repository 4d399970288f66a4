"""CSVBenchmark: queries, ranks with ties, best and regret, errors that name what is wrong."""
from __future__ import annotations

from pathlib import Path

import pytest

from lightning_nas.benchmarks.base import GroundTruthError
from lightning_nas.benchmarks.csv_table import CSVBenchmark
from lightning_nas.spaces.nb201 import NB201Architecture, NB201Space

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


def test_query_by_the_space_key_of_an_architecture(tmp_path):
    """Benchmarks answer keys; an architecture is looked up by ``space.key(arch)`` (its text form on NB201)."""
    space = NB201Space()
    arch = NB201Architecture(("nor_conv_3x3",) * 6)
    assert space.key(arch) == str(arch)
    path = tmp_path / "arch.csv"
    path.write_text(f"ArchitectureString,Accuracy\n{arch},77.5\n")
    bench = CSVBenchmark(str(path), metric="Accuracy")
    assert bench.query(space.key(arch)) == 77.5
    assert space.key(arch) in bench and space.key(NB201Architecture(("none",) * 6)) not in bench
    bench.check(space)  # every key is an architecture of the space in its key form


def _nb201_rows(*texts: str) -> list[tuple[str, float]]:
    return [(text, 50.0 + i) for i, text in enumerate(texts)]


ALL_CONV = str(NB201Architecture(("nor_conv_3x3",) * 6))
ALL_SKIP = str(NB201Architecture(("skip_connect",) * 6))


@pytest.mark.parametrize("comment", [False, True])
def test_check_names_the_line_of_a_key_outside_the_space(tmp_path, comment):
    bad = ALL_SKIP.replace("skip_connect~2", "max_pool_3x3~2")
    path = _write(tmp_path / "t.csv", rows=_nb201_rows(ALL_CONV, bad, ALL_SKIP), comment=comment)
    bench = CSVBenchmark(str(path), metric="Accuracy")
    line = 3 + comment  # (comment), header, ALL_CONV, bad
    assert path.read_text().splitlines()[line - 1].startswith(bad)
    with pytest.raises(GroundTruthError, match=rf"t\.csv:{line}: .* is not a nb201 architecture.*max_pool_3x3"):
        bench.check(NB201Space())
    # an operation subset rejects entries that use other operations
    subset = CSVBenchmark(str(_write(tmp_path / "s.csv", rows=_nb201_rows(ALL_SKIP, ALL_CONV), comment=comment)),
                          metric="Accuracy")
    with pytest.raises(GroundTruthError, match=rf"s\.csv:{3 + comment}: .*outside this space's operations"):
        subset.check(NB201Space(["none", "skip_connect"]))
    subset.check(NB201Space(["skip_connect", "nor_conv_3x3"]))


def test_check_rejects_keys_that_are_not_in_key_form(tmp_path):
    path = _write(tmp_path / "t.csv", rows=_nb201_rows(ALL_CONV, " " + ALL_SKIP), comment=False)
    bench = CSVBenchmark(str(path), metric="Accuracy")
    assert NB201Space().parse(" " + ALL_SKIP) == NB201Architecture(("skip_connect",) * 6)  # parses, but
    with pytest.raises(GroundTruthError, match=r"t\.csv:3: .*not in the canonical key form"):
        bench.check(NB201Space())


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


def test_line_numbers_count_blank_lines_and_comments(tmp_path):
    """csv skips blank lines, so rows and file lines do not pair up one to one: the error still names the
    line the bad value is on (a trailing blank line is no error)."""
    path = tmp_path / "t.csv"
    path.write_text("# a comment\nArchitectureString,Accuracy\na,1\n\n# another\nb,2\nb,3\n\n")
    with pytest.raises(GroundTruthError, match=r"t\.csv:7: 'b' appears twice \(first on line 6\)"):
        CSVBenchmark(str(path), metric="Accuracy").table()
    path.write_text("ArchitectureString,Accuracy\na,1\n\nb,ninety\n\n")
    with pytest.raises(GroundTruthError, match=r"t\.csv:4: Accuracy='ninety' is not a number"):
        CSVBenchmark(str(path), metric="Accuracy").table()


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
    # every architecture of the space is in the table, keyed by ``space.key`` (its text form)
    space = NB201Space()
    bench.check(space)
    arch = space.parse(best)
    assert bench.query(space.key(arch)) == bench.best()
    assert bench.rank(space.key(NB201Architecture(("none",) * 6))) > 15_000  # 10% accuracy: among the worst
