"""``lightning_nas.blackbox``: optimisers driven by decisions, deterministic, selecting by validation
only; trajectories in one format; simulated time from the table; the exact random-search reference."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lightning_nas.blackbox import OPTIMIZERS, CSVTables, TrajectoryError, random_search_regret, run
from lightning_nas.blackbox import trajectory
from lightning_nas.spaces import SPACES

OPS = ["skip_connect", "nor_conv_3x3", "avg_pool_3x3"]


def write_table(folder: Path, shuffle_test: int | None = None, noise: float = 0.3) -> CSVTables:
    """All 729 cells of NB201 over OPS with an additive landscape (a score per edge and operation, so
    that one decision changed is a small step): the validation column is the score, the test column
    the score plus noise (or, with ``shuffle_test``, the test values permuted: unrelated to validation),
    and a training time per cell in a ``.times.csv``."""
    space = SPACES.get("nb201")(operations=OPS)
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 1, size=(6, 3))
    cells = list(space.enumerate())
    valid = [80 + sum(scores[e, i[0]] for e, i in enumerate(space.to_decisions(c))) for c in cells]
    test = [v + rng.normal(0, noise) for v in valid]
    if shuffle_test is not None:
        test = list(np.random.default_rng(shuffle_test).permutation(test))
    seconds = rng.uniform(1.0, 3.0, len(cells))
    with (folder / "table.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["position", "ArchitectureString", "val_accuracy_mean", "test_accuracy_mean"])
        writer.writerows([i, str(c), f"{v:.6f}", f"{t:.6f}"] for i, (c, v, t) in enumerate(zip(cells, valid, test, strict=True)))
    with (folder / "table.times.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["position", "ArchitectureString", "train_seconds_mean", "cpu_seconds_mean"])
        writer.writerows([i, str(c), f"{s:.4f}", f"{s:.4f}"] for i, (c, s) in enumerate(zip(cells, seconds, strict=True)))
    return CSVTables(space="nb201", space_options={"operations": OPS}, table=str(folder / "table.csv"),
                     times=str(folder / "table.times.csv"))


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> CSVTables:
    return write_table(tmp_path_factory.mktemp("table"))


@pytest.fixture(scope="module")
def problem(tables):
    return tables.build()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimiser_is_deterministic_from_its_seed_and_drives_valid_cells(problem, name) -> None:
    options = OPTIMIZERS.get(name).test_options
    first = run(problem, name, seed=3, repetition=1, max_queries=30, options=options, every_query=True)
    again = run(problem, name, seed=3, repetition=1, max_queries=30, options=options, every_query=True)
    other = run(problem, name, seed=3, repetition=2, max_queries=30, options=options, every_query=True)
    assert first == again
    assert first != other
    assert len(first) == 30 and all(r["method"] == name and r["repetition"] == 1 for r in first)
    compact = run(problem, name, seed=3, repetition=1, max_queries=30, options=options)
    # the compact record keeps the incumbent's changes and the end: the same curve
    assert compact[-1] == first[-1] and all(r in first for r in compact) and len(compact) < 30


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_the_incumbent_is_chosen_by_validation_and_test_never_steers(tmp_path, name) -> None:
    """The same seed on two tables that differ only in the test column (permuted): every optimiser
    queries the same cells (same t_sim, same validation), so nothing it did depended on test; the
    incumbent's validation never decreases and its test is the test value of that cell."""
    options = OPTIMIZERS.get(name).test_options
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = run(write_table(tmp_path / "a", shuffle_test=1).build(), name, 5, 0, max_queries=40, options=options)
    b = run(write_table(tmp_path / "b", shuffle_test=2).build(), name, 5, 0, max_queries=40, options=options)
    assert [(r["t_sim"], r["valid"]) for r in a] == [(r["t_sim"], r["valid"]) for r in b]
    assert [r["test"] for r in a] != [r["test"] for r in b]
    assert all(x["valid"] <= y["valid"] for x, y in zip(a, a[1:], strict=False))


def test_validation_column_equal_to_test_is_refused(tmp_path) -> None:
    from lightning_nas.benchmarks import GroundTruthError

    tables = write_table(tmp_path)
    tables.valid_metric = tables.test_metric
    with pytest.raises(GroundTruthError, match="never by test"):
        tables.build()


def test_t_sim_adds_the_table_training_time_of_every_query(problem) -> None:
    records = run(problem, "random_search", seed=0, repetition=0, max_queries=10, every_query=True)
    steps = np.diff([0.0] + [r["t_sim"] for r in records])
    times = set(round(float(s), 4) for s in problem.seconds.table().values())
    assert all(round(float(s), 4) in times for s in steps)
    budget = run(problem, "random_search", seed=0, repetition=0, budget_s=12.0, every_query=True)
    assert budget[-1]["t_sim"] >= 12.0 > budget[-2]["t_sim"]


def test_regularised_evolution_finds_the_optimum_more_often_than_random_search(problem) -> None:
    """Equal budget (60 queries of 729 cells), 30 repetitions each: random search ends on the
    validation-best cell with probability 1 - (728/729)^60 = 0.08; evolution, whose mutation changes
    about one decision of a good parent, climbs the additive landscape. A mutation that ignored the
    parent (a fresh sample) or never changed it would not beat random search."""
    best_valid = max(problem.valid.table().values())

    def hits(name: str, options: dict) -> int:
        return sum(run(problem, name, 0, r, max_queries=60, options=options)[-1]["valid"] >= best_valid - 1e-9
                   for r in range(30))

    evolution = hits("regularized_evolution", {"population": 10, "sample_size": 3})
    random = hits("random_search", {})
    assert evolution >= random + 10, (evolution, random)


def test_mutation_changes_about_one_decision(problem) -> None:
    from lightning_nas.blackbox.optimizers import RegularizedEvolution
    from lightning_nas.seeding import generator

    space = problem.space
    optimiser = RegularizedEvolution(space, generator(0, "test"), population=2, sample_size=1)
    parent = space.sample(generator(1, "parent"))
    changed = [sum(a != b for a, b in zip(space.to_decisions(parent), space.to_decisions(optimiser.mutate(parent)), strict=True))
               for _ in range(600)]
    assert 0.8 < float(np.mean(changed)) < 1.2  # mutation_rate 1: one decision in expectation


def test_reinforce_policy_moves_towards_the_better_option(problem) -> None:
    from lightning_nas.blackbox.optimizers import Reinforce
    from lightning_nas.seeding import generator

    optimiser = Reinforce(problem.space, generator(0, "test"), lr=0.5)
    for _ in range(300):
        arch = optimiser.ask()
        optimiser.tell(arch, problem.fitness(problem.query(arch).valid))
    best = max(problem.valid.table(), key=problem.valid.table().get)
    picks = problem.space.to_decisions(problem.space.parse(best))
    probabilities = optimiser.probabilities()
    # uniform is 1/3; a reversed gradient sign drives it below
    assert np.mean([float(p[pick[0]]) for p, pick in zip(probabilities, picks, strict=True)]) > 1 / 3 + 0.05


def test_exact_random_search_expectation() -> None:
    from lightning_nas.metrics.random_baseline import RandomPolicy

    rng = np.random.default_rng(0)
    test = rng.normal(80, 3, 50)
    regret = test.max() - test
    policy = RandomPolicy.from_table(list(test))
    for n in (1, 4, 20):  # validation = test: the random policy's best of n (Yu et al. 2020 Eq. 1)
        assert random_search_regret(test, regret, n) == pytest.approx(policy.expected_regret(n))
    # two cells tied on validation share its probability: draws of {a, b} tied, c worse; n = 1
    assert random_search_regret([1, 1, 0], [0.0, 2.0, 4.0], 1) == pytest.approx((0 + 2 + 4) / 3)
    # n = 2: P(max = 1) = 1 - (1/3)^2 = 8/9, split between a and b; P(c) = 1/9
    assert random_search_regret([1, 1, 0], [0.0, 2.0, 4.0], 2) == pytest.approx(8 / 9 * 1.0 + 1 / 9 * 4.0)


def test_trajectory_round_trip_and_one_line_errors(tmp_path) -> None:
    records = [trajectory.record("reinforce", 0, 1.5, 80.0, 79.0, 1.25),
               trajectory.record("reinforce", 0, 3.0, 81.0, 80.5, 0.0),
               trajectory.record("random_search", 1, 2.0, 70.0, 71.0, 10.0)]
    path = trajectory.write(tmp_path / "trajectories.jsonl", records)
    assert trajectory.read(path) == records
    assert trajectory.value_at(trajectory.runs(records)["reinforce"][0], 2.0) == 1.25
    assert math.isnan(trajectory.value_at(trajectory.runs(records)["reinforce"][0], 1.0))
    bad = tmp_path / "bad.jsonl"
    for text, expected in [('{"method": "x", "repetition": 0\n', "bad.jsonl:1: not JSON"),
                           (json.dumps({**records[0], "t_sim": "soon"}) + "\n", "t_sim='soon'"),
                           (json.dumps({k: v for k, v in records[0].items() if k != "test"}) + "\n", "missing test"),
                           (json.dumps(records[1]) + "\n" + json.dumps(records[0]) + "\n", "back in time")]:
        bad.write_text(text)
        with pytest.raises(TrajectoryError, match=expected) as error:
            trajectory.read(bad)
        assert "\n" not in str(error.value)


def test_command_line_writes_trajectories_and_a_corrupt_file_is_one_line(tmp_path, tables, capsys) -> None:
    from lightning_nas.blackbox.cli import main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"benchmark": {"class_path": "lightning_nas.blackbox.CSVTables",
                                                "init_args": vars(tables)}}))
    out = tmp_path / "results" / "bb"
    common = ["--recipe", str(recipe), "--repetitions", "2", "--max_queries", "5", "--out", str(out)]
    assert main([*common, "--optimizer", "random_search"]) == 0
    assert main([*common, "--optimizer", "regularized_evolution", "--optimizer_options", "{population: 3, sample_size: 2}"]) == 0
    records = trajectory.read(out / "trajectories.jsonl")
    assert {(r["method"], r["repetition"]) for r in records} == {(m, r) for m in ("random_search", "regularized_evolution")
                                                                  for r in (0, 1)}
    count = len(records)
    experiment = json.loads((out / "experiment.json").read_text())
    assert experiment["methods"]["regularized_evolution"]["settings"]["population"] == 3
    assert main([*common, "--optimizer", "random_search"]) == 0  # a rerun replaces its method's lines
    assert len(trajectory.read(out / "trajectories.jsonl")) == count
    (out / "trajectories.jsonl").write_text("{not json\n")
    capsys.readouterr()
    assert main([*common, "--optimizer", "reinforce"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("blackbox: error:") and "trajectories.jsonl:1" in err and "\n" not in err
    assert main([*common, "--optimizer", "nope"]) == 2
    assert "unknown black-box optimiser 'nope'" in capsys.readouterr().err


def test_results_render_draws_the_anytime_figure_and_table(tmp_path, tables) -> None:
    from lightning_nas.blackbox.cli import main
    from lightning_nas.report.common import ReportError
    from lightning_nas.results.anytime import anytime_table
    from lightning_nas.results.render import render
    from lightning_nas.results.tables import Records

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"benchmark": {"class_path": "lightning_nas.blackbox.CSVTables",
                                                "init_args": vars(tables)}}))
    out = tmp_path / "results" / "bb"
    for name in ("random_search", "regularized_evolution"):
        assert main(["--recipe", str(recipe), "--repetitions", "3", "--max_queries", "8", "--out", str(out),
                     "--optimizer", name]) == 0
    for method in json.loads((out / "experiment.json").read_text())["methods"].values():  # what made the numbers
        assert set(method["environment"]) == {"git", "versions", "cpu"} and method["environment"]["versions"]["torch"]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("<!-- generated:bb/anytime -->\n<!-- /generated:bb/anytime -->\n")
    render(tmp_path)
    text = (tmp_path / "docs" / "page.md").read_text()
    assert "| Random search | 3 | 8 |" in text and "random search, exact expectation (by validation)" in text
    assert (tmp_path / "docs" / "figures" / "bb_anytime.png").stat().st_size > 10_000
    (out / "trajectories.jsonl").write_text('{"method": 1}\n')
    with pytest.raises(ReportError, match="trajectories.jsonl:1"):
        anytime_table(Records.load(out))


TINY_TABULATION = ["--space_options", '{"operations": ["none", "skip_connect", "nor_conv_3x3"]}', "--architectures", "3",
                   "--sample_seed", "3", "--seeds", "[0, 1]", "--max_epochs", "1", "--evaluate", "[test]",
                   "--model", '{"network": {"C": 2, "N": 1}, "lr": 0.1}',
                   "--data", '{"dataset": "digits", "image_size": 8, "batch_size": 32, "val_split": 0.2, '
                             '"train_portion": 0.1, "crop_padding": 1, "horizontal_flip": false}']


def test_tabulation_records_each_cell_training_time_beside_the_table(tmp_path, monkeypatch) -> None:
    """Times go to T.times.csv (the table's bytes stay a function of the protocol), one row per cell and
    seed; shards merge their times as they merge their rows."""
    import lightning_nas.tabulate.run as run_module
    from lightning_nas.tabulate import build_parser, merge, tabulate

    monkeypatch.setattr(run_module, "train_one", lambda c, a, seed: ({"test_accuracy": 50.0, "test_loss": 1.0}, 7))
    out = tmp_path / "table.csv"
    for shard in ("0/2", "1/2"):
        tabulate(build_parser().parse_args([*TINY_TABULATION, "--out", str(out), "--shard", shard]), log=lambda _: None)
    with (tmp_path / "table.shard0of2.times.csv").open(newline="") as handle:
        times = list(csv.DictReader(handle))
    assert [t["position"] for t in times] == ["0", "2"]
    assert all(float(t["train_seconds_seed0"]) >= 0 and float(t["cpu_seconds_mean"]) >= 0 for t in times)
    merge([tmp_path / "table.shard0of2.csv", tmp_path / "table.shard1of2.csv"], out)
    assert "seconds" not in out.read_text()
    with (tmp_path / "table.times.csv").open(newline="") as handle:
        assert [r["position"] for r in csv.DictReader(handle)] == ["0", "1", "2"]


def test_timing_pass_writes_a_time_per_cell(tmp_path) -> None:
    from lightning_nas.tabulate.timing import main

    out = tmp_path / "t.times.csv"
    assert main([*TINY_TABULATION, "--architectures", "2", "--steps", "1", "--times_out", str(out)]) == 0
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all(float(r["cpu_seconds_mean"]) > 0 for r in rows)
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 1
    assert main([*TINY_TABULATION, "--steps", "0", "--times_out", str(out)]) == 2


def test_nb101_tables_give_validation_test_and_training_time(tmp_path) -> None:
    """NAS-Bench-101's own columns: validation and test accuracy (mean over repeats) and training time."""
    from lightning_nas.benchmarks.nasbench101 import encode_row, write_record
    from lightning_nas.blackbox import NB101Tables
    from lightning_nas.spaces.nb101 import CONV3X3, NB101Cell

    cell = NB101Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", CONV3X3, "output"))
    adjacency = "".join(str(b) for row in cell.matrix for b in row)
    path = tmp_path / "nb.tfrecord"
    with path.open("wb") as handle:
        for repeat in range(3):
            write_record(handle, encode_row(cell.hash, 108, adjacency, ",".join(cell.ops), 1000,
                                            (50.0, 0.9, 0.80, 0.79), (100.0 + repeat, 1.0, 0.90 + 0.01 * repeat, 0.89)))
    problem = NB101Tables(str(path)).build()
    query = problem.query(cell)
    assert query.valid == pytest.approx(0.91) and query.test == pytest.approx(0.89) and query.seconds == pytest.approx(101.0)
    assert problem.fitness(query.valid) == pytest.approx(0.91)  # NB101 accuracies are fractions: scale 1


def test_the_anytime_table_counts_runs_that_end_on_the_validation_best_cell(tmp_path) -> None:
    """Validation as the mean of several columns (the digits table's seeds 0-3) has more decimals than
    the 6 a trajectory records: a run that ends on the best cell is counted all the same."""
    from lightning_nas.blackbox.cli import main
    from lightning_nas.results.anytime import anytime_table
    from lightning_nas.results.tables import Records

    tables = write_table(tmp_path)
    tables.valid_metric = ["val_accuracy_mean", "test_accuracy_mean"]  # a mean of two columns
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"benchmark": {"class_path": "lightning_nas.blackbox.CSVTables",
                                                "init_args": vars(tables)}}))
    out = tmp_path / "results" / "bb"
    assert main(["--recipe", str(recipe), "--repetitions", "4", "--max_queries", "729", "--out", str(out),
                 "--optimizer", "random_search"]) == 0
    best = max(tables.build().valid.table().values())
    assert round(best, 6) != best  # the case: more decimals than recorded
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    finals = {r["repetition"]: r for r in rows}
    ended = sum(round(r["valid"], 6) == round(best, 6) for r in finals.values())
    assert ended > 0  # 729 draws with replacement reach the best cell with probability 0.63 each
    assert "| Random search | 4 | 729 |" in anytime_table(Records.load(out))
    assert f"| {ended}/4 |" in anytime_table(Records.load(out))


def test_anytime_curve_is_drawn_from_every_first_answer_to_the_last_end() -> None:
    """A method's band starts once every repetition has an incumbent and stops where its last repetition
    ended: a tuning run that stopped at 100 s is not drawn as if it had searched until 1000 s."""
    import numpy as np

    from lightning_nas.results.anytime import curve

    reps = {0: [{"t_sim": 10.0, "test_regret": 3.0}, {"t_sim": 80.0, "test_regret": 1.0}],
            1: [{"t_sim": 20.0, "test_regret": 2.0}, {"t_sim": 100.0, "test_regret": 0.5}]}
    grid = np.array([5.0, 15.0, 50.0, 90.0, 100.0, 500.0])
    mean, low, high = curve(reps, grid)
    assert np.isnan(mean[[0, 1, 5]]).all()  # before repetition 1 answered; after both ended
    assert mean[2] == pytest.approx(2.5) and mean[3] == pytest.approx(1.5) and mean[4] == pytest.approx(0.75)
    assert low[4] <= mean[4] <= high[4]
