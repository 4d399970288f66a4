"""``lightning_nas.tabulate``: right numbers, crash-safe resumption, shards == one process, benchmark reads it."""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from lightning_nas.benchmarks import CSVBenchmark, GroundTruthError, TabulatedBenchmark
from lightning_nas.tabulate import (TabulateError, architectures, build_parser, main, merge, noise_ceiling,
                                    tabulate, train_one)

# 4 architectures of NB201 restricted to {none, skip_connect, nor_conv_3x3}, a 2-channel net on 8x8 digits,
# one epoch on ~100 images: a training takes a fraction of a second on one thread.
TINY = ["--space_options", '{"operations": ["none", "skip_connect", "nor_conv_3x3"]}', "--architectures", "4",
        "--sample_seed", "3", "--seeds", "[0, 1]", "--max_epochs", "1", "--evaluate", "[test]",
        "--model", '{"network": {"C": 2, "N": 1}, "lr": 0.1}',
        "--data", '{"dataset": "digits", "image_size": 8, "batch_size": 32, "val_split": 0.2, '
                  '"train_portion": 0.1, "crop_padding": 1, "horizontal_flip": false}']


def config(out: Path, *extra: str):
    return build_parser().parse_args([*TINY, "--out", str(out), *extra])


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The reference: one uninterrupted single-process tabulation."""
    out = tmp_path_factory.mktemp("single") / "table.csv"
    tabulate(config(out), log=lambda _: None)
    return out


def test_table_holds_every_architecture_with_stats_from_its_seeds(single: Path) -> None:
    table = rows(single)
    expected = [str(a) for a in architectures(config(single))]
    assert [r["ArchitectureString"] for r in table] == expected
    assert [int(r["position"]) for r in table] == [0, 1, 2, 3]
    for row in table:
        for metric in ("test_accuracy", "test_loss"):
            seeds = [float(row[f"{metric}_seed0"]), float(row[f"{metric}_seed1"])]
            assert float(row[f"{metric}_mean"]) == pytest.approx(statistics.fmean(seeds), abs=1e-6)
            assert float(row[f"{metric}_std"]) == pytest.approx(statistics.stdev(seeds), abs=1e-6)
        assert row["epochs"] == "1" and int(row["params"]) > 0
    # seeds differ (else the "seed" column is a copy), and the table reproduces a fresh training exactly
    assert any(r["test_loss_seed0"] != r["test_loss_seed1"] for r in table)
    again, params = train_one(config(single), table[2]["ArchitectureString"], 1)
    assert float(table[2]["test_loss_seed1"]) == pytest.approx(again["test_loss"], abs=1e-6)
    assert int(table[2]["params"]) == params
    side = json.loads(single.with_suffix(".json").read_text())
    assert side["status"] == "complete" and side["seeds"] == [0, 1]
    assert side["protocol"]["max_epochs"] == 1 and "torch" in side["versions"] and "git" in side
    assert side["cpu"]["capability"] and side["threads"] >= 1  # bit-identity needs the CPU kind and threads
    assert "test_accuracy" in side["noise_ceiling"]


def test_killed_tabulation_resumes_without_duplicates(single: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.csv"
    tabulate(config(out, "--limit", "2"), log=lambda _: None)
    assert len(rows(out)) == 2
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "partial"
    with out.open("a") as handle:  # a kill in the middle of writing the third row
        handle.write("2,|nor_conv_3x3~0|+|none~0|")
    tabulate(config(out), log=lambda _: None)
    assert out.read_text() == single.read_text()
    tabulate(config(out), log=lambda _: None)  # a rerun of a complete table trains nothing, changes nothing
    assert out.read_text() == single.read_text()


def test_resume_refuses_another_protocol(single: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.csv"
    tabulate(config(out, "--limit", "1"), log=lambda _: None)
    with pytest.raises(TabulateError, match="another protocol"):
        tabulate(config(out, "--max_epochs", "2"), log=lambda _: None)


def test_two_shards_merge_to_the_single_process_table(single: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.csv"
    tabulate(config(out, "--shard", "1/2"), log=lambda _: None)
    shard1 = tmp_path / "table.shard1of2.csv"
    assert [int(r["position"]) for r in rows(shard1)] == [1, 3]
    with pytest.raises(TabulateError, match="2 of 4"):
        merge([shard1], tmp_path / "partial.csv")
    tabulate(config(out, "--shard", "0/2"), log=lambda _: None)
    assert main(["merge", "--out", str(out), str(tmp_path / "table.shard0of2.csv"), str(shard1)]) == 0
    assert out.read_text() == single.read_text()
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["status"] == "complete" and len(side["merged_from"]) == 2


def test_table_loads_through_the_benchmark_interface(single: Path) -> None:
    bench = TabulatedBenchmark(str(single), metric="test_accuracy_mean")
    table = rows(single)
    means = {r["ArchitectureString"]: float(r["test_accuracy_mean"]) for r in table}
    assert len(bench) == 4 and bench.table() == means
    for arch, value in means.items():
        assert bench.rank(arch) == 1 + sum(v > value for v in means.values())
        row = next(r for r in table if r["ArchitectureString"] == arch)
        assert bench.seed_values(arch) == [float(row["test_accuracy_seed0"]), float(row["test_accuracy_seed1"])]
    losses = TabulatedBenchmark(str(single), metric="test_loss_mean", higher_is_better=False)
    best = min(means, key=lambda a: float(next(r for r in table if r["ArchitectureString"] == a)["test_loss_mean"]))
    assert losses.rank(best) == 1
    assert CSVBenchmark(str(single), metric="test_accuracy_mean").table() == means
    with pytest.raises(GroundTruthError, match="test_accuracy'"):
        TabulatedBenchmark(str(single), metric="test_accuracy").table()
    with pytest.raises(GroundTruthError, match="benchmark.path"):
        TabulatedBenchmark("no_such_table.csv")


def test_noise_ceiling_of_a_known_table(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    seed0, seed1 = [90.0, 80.0, 70.0, 60.0, 50.0], [91.0, 79.0, 72.0, 49.95, 60.1]  # seed 1 swaps the last two
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ArchitectureString", "test_accuracy_mean", "test_accuracy_std",
                         "test_accuracy_seed0", "test_accuracy_seed1"])
        for i, (a, b) in enumerate(zip(seed0, seed1, strict=True)):
            writer.writerow([f"a{i}", (a + b) / 2, abs(a - b) / 2 ** 0.5, a, b])
    result = noise_ceiling(path, [0, 1], ["test_accuracy"])["test_accuracy"]
    assert result["all"]["seed_to_seed_kendall"] == pytest.approx(0.8)  # 9 of 10 pairs agree
    assert result["all"]["seed_to_seed_spearman"] == pytest.approx(0.9)  # 1 - 6*2/(5*24)
    assert result["all"]["spearman_brown_mean_of_seeds"] == pytest.approx(2 * 0.9 / 1.9, abs=1e-4)
    spread = result["spread"]
    assert spread["best"] == 90.5 and spread["worst"] == 54.975
    assert spread["pairs_within_threshold"] == 1  # means 54.975 and 55.05
    assert spread["within_threshold_of_best"] == 1


def test_bad_input_gives_one_line_naming_the_key(tmp_path: Path, capsys) -> None:
    with pytest.raises(TabulateError, match=r"model\.nope"):
        tabulate(config(tmp_path / "t.csv", "--model", '{"nope": 1}'), log=lambda _: None)
    with pytest.raises(TabulateError, match=r"data\.seed"):
        tabulate(config(tmp_path / "t.csv", "--data", '{"seed": 3}'), log=lambda _: None)
    assert main([*TINY, "--out", str(tmp_path / "t.csv"), "--shard", "2/2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tabulate: error: --shard 2/2") and "\n" not in err
    assert main([*TINY, "--out", str(tmp_path / "t.csv"), "--architectures", "100000"]) == 2
    assert "architectures" in capsys.readouterr().err


def test_shipped_table_resolves_by_name_from_anywhere(tmp_path: Path, monkeypatch) -> None:
    from lightning_nas.benchmarks.tabulated import TABLES

    if not (TABLES / "nb201_digits.csv").is_file():
        pytest.skip("the shipped digits table is not there yet")
    monkeypatch.chdir(tmp_path)
    bench = TabulatedBenchmark("nb201_digits.csv")
    assert len(bench) >= 500 and bench.sidecar["status"] == "complete" and len(bench.sidecar["seeds"]) >= 2
    best = max(bench.table(), key=bench.table().get)
    assert bench.rank(best) == 1 and len(bench.seed_values(best)) == len(bench.sidecar["seeds"])


def test_rerunning_a_complete_table_changes_nothing(single: Path) -> None:
    """A finished table's record (timing, noise ceiling) must survive a rerun of its command."""
    table, side = single.read_bytes(), single.with_suffix(".json").read_bytes()
    tabulate(config(single), log=lambda _: None)
    assert single.read_bytes() == table
    assert single.with_suffix(".json").read_bytes() == side


def test_extending_a_table_with_a_seed_keeps_existing_values(single: Path, tmp_path: Path, monkeypatch) -> None:
    """Seeds [0] first, then [0, 1]: the seed-0 values are copied as written (never retrained) and the
    extended table equals the one made with both seeds at once."""
    import lightning_nas.tabulate.run as run_module

    out = tmp_path / "table.csv"
    tabulate(config(out, "--seeds", "[0]"), log=lambda _: None)
    first = rows(out)
    assert [k for k in first[0] if "seed" in k] == ["test_accuracy_seed0", "test_loss_seed0"]
    trained = []
    real = run_module.train_one
    monkeypatch.setattr(run_module, "train_one", lambda c, a, seed: trained.append(seed) or real(c, a, seed))
    with pytest.raises(TabulateError, match="another protocol"):  # only the seeds may change
        tabulate(config(out, "--seeds", "[0, 1]", "--max_epochs", "2"), log=lambda _: None)
    tabulate(config(out, "--seeds", "[0, 1]", "--limit", "2"), log=lambda _: None)  # interrupted extension
    assert rows(out) == first  # the table stays the 1-seed table until the extension is complete
    assert (tmp_path / "table.extending.csv").is_file()
    tabulate(config(out, "--seeds", "[0, 1]"), log=lambda _: None)
    assert trained == [1, 1, 1, 1]
    extended = rows(out)
    for before, after in zip(first, extended, strict=True):
        assert after["test_accuracy_seed0"] == before["test_accuracy_seed0"]
        assert after["test_loss_seed0"] == before["test_loss_seed0"]
    assert out.read_text() == single.read_text()
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["seeds"] == [0, 1] and side["extends"]["seeds"] == [0] and side["status"] == "complete"
    assert not (tmp_path / "table.extending.csv").exists()


def test_extension_copies_values_instead_of_retraining(tmp_path: Path, monkeypatch) -> None:
    import lightning_nas.tabulate.run as run_module

    out = tmp_path / "table.csv"
    tabulate(config(out, "--seeds", "[1]", "--architectures", "2"), log=lambda _: None)
    text = out.read_text().splitlines()
    cells = text[1].split(",")
    cells[2] = cells[4] = "12.345"  # a value no training gives: it must survive the extension as is
    out.write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")
    monkeypatch.setattr(run_module, "train_one", lambda c, a, seed: ({"test_accuracy": 50.0, "test_loss": 1.0}, 7))
    tabulate(config(out, "--seeds", "[1, 5]", "--architectures", "2"), log=lambda _: None)
    table = rows(out)
    assert table[0]["test_accuracy_seed1"] == "12.345" and table[0]["test_accuracy_seed5"] == "50"
    assert float(table[0]["test_accuracy_mean"]) == pytest.approx((12.345 + 50) / 2)


def test_extension_by_shards_merges_to_the_extended_table(tmp_path: Path, monkeypatch) -> None:
    """More seeds for a finished table in two shard processes: the merged table keeps the old values
    and its sidecar still says what it extends."""
    import lightning_nas.tabulate.run as run_module

    out = tmp_path / "table.csv"
    monkeypatch.setattr(run_module, "train_one",
                        lambda c, a, seed: ({"test_accuracy": 40.0 + seed, "test_loss": 1.0}, 7))
    tabulate(config(out, "--seeds", "[1]", "--architectures", "3"), log=lambda _: None)
    before = rows(out)
    for shard in ("0/2", "1/2"):
        tabulate(config(out, "--seeds", "[1, 5]", "--architectures", "3", "--shard", shard), log=lambda _: None)
    merge([tmp_path / "table.shard0of2.csv", tmp_path / "table.shard1of2.csv"], out)
    after = rows(out)
    assert [r["test_accuracy_seed1"] for r in after] == [r["test_accuracy_seed1"] for r in before]
    assert all(r["test_accuracy_seed5"] == "45" and float(r["test_accuracy_mean"]) == 43.0 for r in after)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["seeds"] == [1, 5] and side["extends"]["seeds"] == [1] and side["status"] == "complete"


def test_tabulate_never_writes_into_the_package(tmp_path: Path, monkeypatch, capsys) -> None:
    import lightning_nas

    package = Path(lightning_nas.__file__).resolve().parent
    before = sorted(p.name for p in (package / "benchmarks" / "tables").iterdir())
    target = package / "benchmarks" / "tables" / "nb201_digits.csv"
    assert main([*TINY, "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert "inside the installed package" in err and "\n" not in err
    assert main([*TINY, "--out", str(target), "--shard", "0/2"]) == 2
    assert main(["merge", "--out", str(package / "t.csv"), str(tmp_path / "a.csv")]) == 2
    assert "inside the installed package" in capsys.readouterr().err
    assert sorted(p.name for p in (package / "benchmarks" / "tables").iterdir()) == before
    # without --out the table goes under runs/ of the working directory, named after the recipe
    recipe = tmp_path / "tabulate_tiny.yaml"
    recipe.write_text("max_epochs: 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("lightning_nas.tabulate.run.train_one",
                        lambda c, a, seed: ({"test_accuracy": 50.0, "test_loss": 1.0}, 7))
    assert main(["--recipe", str(recipe), *TINY, "--architectures", "1"]) == 0
    assert (tmp_path / "runs" / "tabulate" / "tiny.csv").is_file()


def test_shipped_recipes_write_under_runs() -> None:
    import yaml

    for recipe in Path(__file__).resolve().parents[1].glob("recipes/tabulate_*.yaml"):
        out = yaml.safe_load(recipe.read_text()).get("out")
        assert out is None or out.startswith("runs/"), recipe


def test_split_seed_fixes_the_split_across_training_seeds(tmp_path: Path, monkeypatch) -> None:
    from lightning_nas.data.images import ImageDataModule

    splits = []
    real = ImageDataModule.splits.fget

    def spy(self):
        result = real(self)
        splits.append((self.seed, result["val"][:5].tolist()))
        return result

    monkeypatch.setattr(ImageDataModule, "splits", property(spy))
    cfg = config(tmp_path / "t.csv", "--split_seed", "7", "--evaluate", "[val, test]")
    first, _ = train_one(cfg, str(architectures(cfg)[0]), 0)
    second, _ = train_one(cfg, str(architectures(cfg)[0]), 1)
    assert first != second  # the training seed still matters
    vals = {tuple(v) for _, v in splits}
    assert len(vals) == 1, splits  # ... but the split is the same for both
    assert {s for s, _ in splits} >= {0, 1}  # and batches follow the training seed after the split
    from lightning_nas.tabulate.options import protocol

    assert protocol(cfg)["split_seed"] == 7 and "split_seed" not in protocol(config(tmp_path / "t.csv"))


def test_split_half_reliability_and_top_quartile_agreement() -> None:
    from lightning_nas.tabulate.noise import split_half

    truth = [float(i) for i in range(8)]
    same = split_half([truth, truth, truth, truth])
    assert same["spearman_half_means"] == 1.0 and same["spearman_brown"] == 1.0
    assert same["top_quartile_agreement"] == 1.0 and same["splits"] == 3  # {0,1}|{2,3}, {0,2}|.., {0,3}|..
    # two seeds: one split; seed 1 reverses the order -> rho = -1, no top-quartile overlap
    reverse = split_half([truth, truth[::-1]])
    assert reverse["spearman_half_means"] == -1.0 and reverse["top_quartile_agreement"] == 0.0
    # seed 1 swaps the two best: top quartile (2 of 8) still agrees; rho = 1 - 6*2/(8*63)
    swapped = truth[:6] + [7.0, 6.0]
    result = split_half([truth, swapped])
    rho = 1 - 6 * 2 / (8 * 63)
    assert result["spearman_half_means"] == pytest.approx(rho, abs=1e-4)
    assert result["spearman_brown"] == pytest.approx(2 * rho / (1 + rho), abs=1e-4)
    assert result["top_quartile_agreement"] == 1.0 and result["top_quartile_agreement_by_chance"] == 0.25
    # losses: lower is better
    assert split_half([truth, swapped], higher_is_better=False)["top_quartile_agreement"] == 1.0


def test_sigterm_stops_between_architectures_and_resumes(single: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """SIGTERM during the second architecture: that architecture is finished and written, the next one
    is not started, the exit status is 128 + 15, and a rerun completes the table."""
    import os
    import signal

    signals = pytest.importorskip("lightning_nas.signals")
    import lightning_nas.tabulate.run as run_module

    real = run_module.train_one
    calls = []

    def train_and_signal(c, arch, seed):
        calls.append((arch, seed))
        if len(calls) == 3:  # the first seed of the second architecture
            os.kill(os.getpid(), signal.SIGTERM)
        return real(c, arch, seed)

    monkeypatch.setattr(run_module, "train_one", train_and_signal)
    out = tmp_path / "table.csv"
    assert main([*TINY, "--out", str(out)]) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in capsys.readouterr().err
    assert len(calls) == 4 and len(rows(out)) == 2  # the second architecture finished its seeds
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "partial"
    assert signal.getsignal(signal.SIGTERM) is not signals._handler  # handlers restored
    monkeypatch.setattr(run_module, "train_one", real)
    tabulate(config(out), log=lambda _: None)
    assert out.read_text() == single.read_text()


def test_nb101_table_holds_one_cell_per_graph_hash_and_answers_by_hash(tmp_path: Path) -> None:
    """A table holds functions, not decisions: the 423 decided 4-vertex NB101 cells are 91 graph hashes
    (Ying et al. 2019), so 'all' trains one cell per hash and writes the hash as the ``key`` column that
    the benchmark answers by (the key runs look architectures up with, ``space.key``)."""
    from lightning_nas.spaces import SPACES

    space = SPACES.get("nb101")(num_vertices=4)
    cfg = build_parser().parse_args(["--space", "nb101", "--space_options", '{"num_vertices": 4}',
                                     "--architectures", "all", "--seeds", "[0]", "--out", str(tmp_path / "t.csv")])
    archs = architectures(cfg)
    assert len(list(space.enumerate())) == 423 and len(archs) == 91
    assert len({space.key(a) for a in archs}) == 91
    cfg = build_parser().parse_args([*TINY, "--space", "nb101", "--space_options", '{"num_vertices": 4}',
                                     "--architectures", "all", "--limit", "3",
                                     "--model", '{"network": {"stem": 2, "num_stacks": 1, "cells_per_stack": 1}}',
                                     "--out", str(tmp_path / "t.csv")])
    out = tabulate(cfg, log=lambda _: None)
    table = rows(out)
    assert list(table[0])[-1] == "key"
    for row in table:
        assert row["key"] == space.key(space.parse(row["ArchitectureString"]))
    benchmark = TabulatedBenchmark(str(out))
    # an isomorphic or unpruned variant of a tabulated cell is found under its hash
    cell = space.parse(table[0]["ArchitectureString"])
    twins = [a for a in space.enumerate() if space.key(a) == space.key(cell) and a != cell]
    assert twins, "the enumeration has equivalent decided cells"
    assert benchmark.query(space.key(twins[0])) == float(table[0]["test_accuracy_mean"])
    assert benchmark.seed_values(space.key(cell)) == [float(table[0]["test_accuracy_seed0"]),
                                                      float(table[0]["test_accuracy_seed1"])]
    benchmark.check(space)  # the check runs make before training: every row's key is its cell's hash
    tampered = tmp_path / "tampered.csv"
    tampered.write_text(out.read_text().replace(table[1]["key"], table[0]["key"]))
    with pytest.raises(GroundTruthError, match=r"tampered.csv:3: key .* is not the nb101 key"):
        TabulatedBenchmark(str(tampered)).check(space)
    # a space keyed by its text form keeps the table's old columns
    assert "key" not in rows(tabulate(config(tmp_path / "nb201.csv"), log=lambda _: None))[0]


def test_record_tables_resolve_by_name_and_loss_tables_have_their_statistics(tmp_path: Path, monkeypatch) -> None:
    """A table shipped as a record (``results/rnn_pilots/``) is found by its name, after the installed
    tables; the docs statistics of a lower-is-better table (PTB: val_loss) rank by that loss."""
    from lightning_nas.benchmarks import tabulated
    from lightning_nas.results.ground_truth import reliability, spread, table_block

    assert tabulated.RECORD_TABLES[0].parts[-2:] == ("results", "rnn_pilots")
    folder = tmp_path / "records"
    folder.mkdir()
    monkeypatch.setattr(tabulated, "RECORD_TABLES", (folder,))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GroundTruthError, match="pilot.csv does not exist"):
        tabulated.resolve_table("pilot.csv")
    # 4 cells x 4 seeds; cell i's loss 4.0 + 0.1 i plus seed noise that never reorders them
    noise = [0.0, 0.01, -0.01, 0.002]
    header = (["position", "ArchitectureString", "val_accuracy_mean", "val_accuracy_std"]
              + [f"val_accuracy_seed{s}" for s in range(4)] + ["val_loss_mean", "val_loss_std"]
              + [f"val_loss_seed{s}" for s in range(4)])
    with (folder / "pilot.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(4):
            losses = [4.0 + 0.1 * i + n for n in noise]
            accs = [30.0 - i + n for n in noise]
            writer.writerow([i, f"tanh~0|relu~{i % 2}", statistics.fmean(accs), statistics.stdev(accs), *accs,
                             statistics.fmean(losses), statistics.stdev(losses), *losses])
    assert tabulated.resolve_table("pilot.csv") == folder / "pilot.csv"
    assert tabulated.resolve_table(folder / "pilot.csv") == folder / "pilot.csv"
    assert table_block("pilot.csv", "spread") == spread(folder / "pilot.csv")
    head, _, row = reliability(folder / "pilot.csv").splitlines()
    assert head.startswith("| seeds (val loss) |") and "seed-to-seed Kendall tau" in head
    assert head.endswith("| val accuracy: split-half reliability |")
    assert row.startswith("| 4 (0-3) | 1.000 | 1.000 | 1.000 |") and row.endswith("| 1.000 | 1.000 |")
    cells = spread(folder / "pilot.csv").splitlines()[2].split(" | ")
    assert cells[2] == "4.0005" and cells[8] == "4.3005"  # best = lowest mean loss, worst = highest
    assert cells[-1] == "1 |"  # the next cell is 0.1 away, far beyond two standard errors
    # cost: the sidecar's wall clock and, for a loss-ranked table, the mean CPU seconds of its times file
    (folder / "pilot.json").write_text(json.dumps({"seeds": [0, 1, 2, 3], "architectures_in_table_order": 4,
                                                   "train_seconds": 160.0, "git": {"commit": "abc", "dirty": False}}))
    (folder / "pilot.times.csv").write_text("position,ArchitectureString,train_seconds_mean,cpu_seconds_mean\n"
                                            "0,a,10,4.0\n1,b,10,6.0\n2,c,10,5.0\n3,d,10,5.0\n")
    head, rule, row = table_block("pilot.csv", "cost").splitlines()
    assert "| CPU seconds per training (mean) | made at commit |" in head and rule.count("|") == head.count("|")
    assert row == "| 4 | 4 | 16 | 0.0 | 10.0 | 5.0 | abc | no |"
    # a partial merge (shards still running, no totals in their sidecars): its cells and their times
    (folder / "pilot.json").write_text(json.dumps({"seeds": [0, 1, 2, 3], "architectures_in_table_order": 6,
                                                   "status": "partial", "git": {"commit": "abc", "dirty": False}}))
    assert table_block("pilot.csv", "cost").splitlines()[2] == "| 4 | 4 | 16 | 0.0 | 10.0 | 5.0 | abc | no |"
