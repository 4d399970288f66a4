"""BOHB over architectures (``lightning_nas.blackbox.bohb``) and the black-box optimisers on NAS-Bench-101
and NAS-Bench-1Shot1 sub-spaces, through tiny NAS-Bench-101 files in the official format with every
epoch budget (4, 12, 36, 108). The registry tests of ``test_blackbox.py`` cover BOHB's determinism and
its selection by validation on the NB201 fixture."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_nas.blackbox import OPTIMIZERS, NB101Tables, run
from lightning_nas.blackbox.bohb import bracket_sizes
from lightning_nas.blackbox.optimizers import build_optimizer
from lightning_nas.blackbox.search import compact
from lightning_nas.seeding import generator
from lightning_nas.spaces import SPACES

sys.path.insert(0, str(Path(__file__).parent))
from test_blackbox import write_table  # noqa: E402  (the NB201 fixture table)

BUDGETS = (4, 12, 36, 108)


def _unit(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by the cell's hash (the fixture's landscape)."""
    return int(hashlib.sha256(f"{salt}{key}".encode()).hexdigest()[:8], 16) / 16 ** 8


def write_nb101(path: Path, spaces: list) -> dict:
    """Every cell of ``spaces`` at every budget, one repeat each: validation accuracy rising with the
    budget (with a budget-specific part, so low budgets rank imperfectly), test = the 108-epoch
    validation plus a cell-specific offset, training time proportional to the epochs. Returns
    {(hash, epochs): (valid, test, seconds)}."""
    from lightning_nas.benchmarks.nasbench101 import encode_row, write_record

    cells = {}
    for space in spaces:
        for arch in space.enumerate():
            cell = arch.to_nb101() if hasattr(arch, "to_nb101") else arch
            cells.setdefault(cell.hash, cell.pruned())
    values = {}
    with path.open("wb") as handle:
        for key, cell in sorted(cells.items()):
            adjacency = "".join(str(b) for row in cell.matrix for b in row)
            for epochs in BUDGETS:
                valid = 0.6 + 0.2 * _unit(key, "v") + 0.05 * _unit(key, str(epochs)) - 0.5 / epochs
                test = 0.6 + 0.2 * _unit(key, "v") + 0.05 * _unit(key, "108") - 0.5 / 108 + 0.02 * _unit(key, "t")
                seconds = epochs * (1.0 + _unit(key, "s"))
                values[(key, epochs)] = (valid, test, seconds)
                write_record(handle, encode_row(key, epochs, adjacency, ",".join(cell.ops), 1000,
                                                (seconds / 2, 0.5, valid - 0.1, test - 0.1), (seconds, 0.9, valid, test)))
    return values


@pytest.fixture(scope="module")
def nb101_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb101")
    spaces = [SPACES.get("nb101")(num_vertices=4), SPACES.get("nb1shot1")(**SPACES.get("nb1shot1").tiny_options)]
    values = write_nb101(folder / "tiny.tfrecord", spaces)
    return folder / "tiny.tfrecord", values


def test_hyperband_bracket_sizes_are_hpbandsters() -> None:
    """NAS-Bench-101's budgets 4-108 with eta 3: hpbandster's four brackets (27, 9, 3, 1 configurations
    down to 4 at the full budget); one fidelity: one configuration per bracket."""
    assert bracket_sizes(3, 3) == [[27, 9, 3, 1], [9, 3, 1], [6, 2], [4]]
    assert bracket_sizes(0, 3) == [[1]]
    assert bracket_sizes(2, 2) == [[4, 2, 1], [2, 1], [3]]  # floor(3 / 2) * 2: hpbandster floors, Li et al. ceil


def test_bohb_follows_successive_halving_over_the_nb101_budgets(nb101_file) -> None:
    """The first bracket queries 27 cells at 4 epochs, the best 9 of them by validation (the first of
    equals) at 12, the best 3 of those at 36, the best at 108; the next bracket starts at 12. Each
    query costs the training time of its budget; the reported test is the 108-epoch one; proposals the
    space rejects (disconnected 4-vertex cells) are never queried."""
    path, values = nb101_file
    problem = NB101Tables(str(path), space_options={"num_vertices": 4}).build()
    assert problem.budgets == BUDGETS
    optimiser = build_optimizer("bohb", problem.space, generator(7, "blackbox", "bohb", 0), {"num_samples": 16},
                                problem.budgets)
    queried = []
    for _ in range(40 + 13):
        arch = optimiser.ask()
        query = problem.query(arch, optimiser.fidelity)
        optimiser.tell(arch, problem.fitness(query.valid))
        queried.append((optimiser.fidelity, arch, query))
        assert (query.valid, query.test, query.seconds) == pytest.approx(values[(query.key, query.epochs)][:1]
                                                                         + values[(query.key, 108)][1:2]
                                                                         + values[(query.key, query.epochs)][2:])
    assert [f for f, _, _ in queried] == [4] * 27 + [12] * 9 + [36] * 3 + [108] + [12] * 9 + [36] * 3 + [108]
    for start, size, keep in ((0, 27, 9), (27, 9, 3), (36, 3, 1), (40, 9, 3), (49, 3, 1)):
        stage = queried[start:start + size]
        best = sorted(range(size), key=lambda i: -stage[i][2].valid)[:keep]
        assert [a for _, a, _ in queried[start + size:start + size + keep]] == [stage[i][1] for i in best]
    assert optimiser.invalid > 0  # it proposed rejected cells, told the model, and went on
    # search.run: the same queries (same seed and repetition), t_sim the summed cost of each budget
    records = run(problem, "bohb", 7, 0, max_queries=53, options={"num_samples": 16}, every_query=True)
    assert records[-1]["t_sim"] == pytest.approx(sum(q.seconds for _, _, q in queried), abs=1e-3)
    best = max(range(53), key=lambda i: (queried[i][2].valid, -i))
    assert records[-1]["test"] == pytest.approx(queried[best][2].test, abs=1e-6)


@pytest.mark.parametrize("space", ["nb101", "nb1shot1"])
def test_every_optimiser_searches_nb101_and_1shot1_sub_spaces(nb101_file, space) -> None:
    """Random search, regularised evolution, REINFORCE and BOHB on NB101's 4-vertex cells and on a
    1Shot1 space through NAS-Bench-101: every query is a cell of the table (a cell outside it would be
    an error), the records are deterministic, the regret is against the space's best 108-epoch test."""
    path, _ = nb101_file
    options = {"num_vertices": 4} if space == "nb101" else SPACES.get("nb1shot1").tiny_options
    problem = NB101Tables(str(path), space=space, space_options=dict(options)).build()
    for name in OPTIMIZERS.names():
        test_options = OPTIMIZERS.get(name).test_options
        first = run(problem, name, 1, 0, max_queries=15, options=test_options)
        every = run(problem, name, 1, 0, max_queries=15, options=test_options, every_query=True)
        assert first == compact(every) and len(every) == 15  # what the command line writes
        assert all(r["test_regret"] >= 0 for r in first) and first[-1]["t_sim"] > 0


def test_bohb_model_proposes_better_than_uniform_cells_and_leaves_numpy_alone(tmp_path) -> None:
    """On the additive NB201 fixture (729 cells, one fidelity) the cells BOHB proposes once its model
    exists (after the first 10 queries) have a mean validation above the table's mean; a model told the
    negated fitness would propose below it. Its draws come from its own streams: numpy's global
    generator ends where it would without BOHB, and reseeding it changes nothing in BOHB."""
    problem = write_table(tmp_path).build()
    table_mean = float(np.mean(list(problem.valid.table().values())))
    later = []
    for repetition in range(3):
        optimiser = build_optimizer("bohb", problem.space, generator(0, "bohb test", repetition), {"num_samples": 16},
                                    problem.budgets)
        for i in range(40):
            arch = optimiser.ask()
            query = problem.query(arch, optimiser.fidelity)
            optimiser.tell(arch, problem.fitness(query.valid))
            if i >= 10:
                later.append(query.valid)
    assert float(np.mean(later)) > table_mean + 0.5, (np.mean(later), table_mean)

    np.random.seed(0)
    expected = np.random.rand(2)
    np.random.seed(0)
    first = np.random.rand()
    a = run(problem, "bohb", 2, 0, max_queries=12, options={"num_samples": 8})
    assert [first, np.random.rand()] == list(expected)
    np.random.seed(123)
    assert run(problem, "bohb", 2, 0, max_queries=12, options={"num_samples": 8}) == a


def test_bohb_options_are_checked_in_one_line(tmp_path) -> None:
    problem = write_table(tmp_path).build()
    with pytest.raises(ValueError, match="min_budget 4 is not an epoch budget of the problem; it has one fidelity"):
        build_optimizer("bohb", problem.space, generator(0), {"min_budget": 4}, problem.budgets)
    with pytest.raises(ValueError, match="eta must be an integer >= 2"):
        build_optimizer("bohb", problem.space, generator(0), {"eta": 1}, problem.budgets)
    with pytest.raises(ValueError, match="optimizer_options.budgets: unknown option of bohb"):
        build_optimizer("bohb", problem.space, generator(0), {"budgets": [1]}, problem.budgets)


def test_tuning_objective_looks_up_nb101_validation_of_a_1shot1_answer(nb101_file, tmp_path) -> None:
    """NAS-Bench-1Shot1's tuning objective: the answer (a 1Shot1 cell's text) is parsed by the space,
    keyed by its NB101 hash, and its 108-epoch validation accuracy and training time come from the
    table; its test accuracy and test regret are the table's too (what is reported, as for the
    discrete optimisers on the same problem, never what is optimised); a mode against the metric, a
    cell outside the space and a tuning file naming no class are one line each."""
    from lightning_nas.tuning.objective import Validation
    from lightning_nas.tuning.settings import Objective, TuningError, load_tuning

    path, values = nb101_file
    options = dict(SPACES.get("nb1shot1").tiny_options)
    benchmark = {"class_path": "lightning_nas.blackbox.NB101Tables",
                 "init_args": {"path": str(path), "space": "nb1shot1", "space_options": options}}
    validation = Validation(Objective(benchmark=benchmark), tmp_path)
    space = SPACES.get("nb1shot1")(**options)
    best = max(test for (_, epochs), (_, test, _) in values.items() if epochs == 108)
    for arch in list(space.enumerate())[:5]:
        valid, test, seconds = values[(space.key(arch), 108)]
        result = validation(str(arch))
        assert result["valid"] == pytest.approx(valid) and result["train_seconds"] == pytest.approx(seconds)
        assert result["test"] == pytest.approx(test) and result["test_regret"] == pytest.approx(best - test)
    with pytest.raises(TuningError, match="objective.mode min: the benchmark's validation metric is higher is better"):
        Validation(Objective(benchmark=benchmark, mode="min"), tmp_path)
    other = SPACES.get("nb1shot1")(search_space=2, operations=options["operations"])
    with pytest.raises(TuningError, match="objective.benchmark: "):
        validation(str(next(iter(other.enumerate()))))
    tuning = tmp_path / "tune.yaml"
    cs1 = Path(__file__).parents[1] / "recipes" / "tuning" / "cs1.yaml"
    tuning.write_text(f"space: {cs1}\nobjective: {{benchmark: {{class_path: lightning_nas.blackbox.NB101Tables, "
                      f"init_args: {{path: {path}}}}}}}\n")
    assert load_tuning(tuning).objective.benchmark["init_args"]["path"] == str(path)
    tuning.write_text(f"space: {cs1}\nobjective: {{benchmark: nb101}}\n")
    with pytest.raises(TuningError, match="objective.benchmark must be"):
        load_tuning(tuning)


def test_command_line_runs_bohb_on_nb101_and_records_its_budgets_and_cost(nb101_file, tmp_path) -> None:
    import json

    from lightning_nas.blackbox import trajectory
    from lightning_nas.blackbox.cli import main

    path, _ = nb101_file
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"benchmark": {"class_path": "lightning_nas.blackbox.NB101Tables",
                                                "init_args": {"path": str(path), "space_options": {"num_vertices": 4}}}}))
    out = tmp_path / "bb"
    assert main(["--recipe", str(recipe), "--optimizer", "bohb", "--optimizer_options", "{num_samples: 8, min_budget: 12}",
                 "--repetitions", "2", "--budget_s", "400", "--out", str(out)]) == 0
    method = json.loads((out / "experiment.json").read_text())["methods"]["bohb"]
    assert method["settings"]["budgets"] == [12, 36, 108] and method["settings"]["eta"] == 3
    assert method["cpu_seconds_per_query"] > 0
    records = trajectory.read(out / "trajectories.jsonl")
    assert {r["repetition"] for r in records} == {0, 1} and all(r["t_sim"] > 0 for r in records)


def _tuning_experiment(folder: Path, seed: int, regrets: list[float], scheduler: str = "bohb") -> Path:
    """What a finished --tune experiment leaves for the anytime comparison: tuning.json (settings,
    overhead) and trajectories.jsonl (the incumbent after each evaluation)."""
    import json

    folder.mkdir(parents=True)
    settings = {"scheduler": scheduler, "num_samples": 4, "rungs": [4, 8], "seed": seed, "method": "BOHB-darts"}
    (folder / "tuning.json").write_text(json.dumps({"settings": settings, "overhead": {"per_evaluation_seconds": 0.5}}))
    lines = [{"method": "BOHB-darts", "repetition": 0, "t_sim": 10.0 * (i + 1), "valid": 80.0 + i, "test": 80.0,
              "test_regret": r} for i, r in enumerate(regrets)]
    (folder / "trajectories.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_tuning_repetitions_join_the_anytime_comparison_with_an_interval(tmp_path) -> None:
    """Two tuning seeds become repetitions 0 and 1 of one method beside the black-box optimisers; the
    anytime table gives their mean final regret and bootstrap interval; a repeated seed or settings
    that differ beyond the seed are one line each; rejoining replaces the method's lines."""
    import json

    from lightning_nas.blackbox import trajectory
    from lightning_nas.blackbox.cli import main as blackbox
    from lightning_nas.results.anytime import anytime_table
    from lightning_nas.results.tables import Records
    from lightning_nas.tuning.__main__ import main as tuning

    tables = write_table(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"benchmark": {"class_path": "lightning_nas.blackbox.CSVTables", "init_args": vars(tables)}}))
    out = tmp_path / "results" / "bb"
    assert blackbox(["--recipe", str(recipe), "--repetitions", "2", "--max_queries", "5", "--out", str(out)]) == 0
    a = _tuning_experiment(tmp_path / "t0", 0, [3.0, 1.0])
    b = _tuning_experiment(tmp_path / "t1", 1, [2.0, 2.0, 0.0])
    assert tuning(["join", str(a), str(b), "--to", str(out)]) == 0
    records = trajectory.read(out / "trajectories.jsonl")
    tuned = [r for r in records if r["method"] == "BOHB-darts"]
    assert {r["repetition"] for r in tuned} == {0, 1} and len(tuned) == 5
    assert "| BOHB-darts | 2 | - |" in anytime_table(Records.load(out))
    assert "| 0.500 [0.000, 1.000] |" in anytime_table(Records.load(out))  # finals 1 and 0
    experiment = json.loads((out / "experiment.json").read_text())
    assert experiment["methods"]["BOHB-darts"]["seeds"] == [0, 1] and "random_search" in experiment["methods"]
    assert tuning(["join", str(a), str(b), "--to", str(out)]) == 0  # again: replaced, not added
    assert len(trajectory.read(out / "trajectories.jsonl")) == len(records)
    assert tuning(["join", str(a), str(a), "--to", str(out)]) == 2
    c = _tuning_experiment(tmp_path / "t2", 2, [1.0], scheduler="asha")
    assert tuning(["join", str(a), str(c), "--to", str(out)]) == 2
    # the untuned runs the tuned ones are compared with (results/tuned.py) are recorded as RESULTS/GROUP
    assert tuning(["join", str(a), str(b), "--to", str(out), "--default", "strategies/DARTS (1st order)"]) == 0
    default = json.loads((out / "experiment.json").read_text())["methods"]["BOHB-darts"]["default"]
    assert default == {"results": "strategies", "group": "DARTS (1st order)"}
    assert tuning(["join", str(a), str(b), "--to", str(out), "--default", "DARTS"]) == 2


def test_tuning_trajectory_never_goes_back_in_time() -> None:
    """An incumbent whose answer trains faster than its predecessor's is placed no earlier than it."""
    from lightning_nas.tuning.trajectory import trajectory

    evals = [{"search_seconds": 10.0, "valid": 80.0, "test": 79.0, "test_regret": 2.0, "train_seconds": 50.0},
             {"search_seconds": 10.0, "valid": 81.0, "test": 80.0, "test_regret": 1.0, "train_seconds": 5.0}]
    lines = trajectory(evals, "max", "m", 0)
    assert [line["t_sim"] for line in lines] == [60.0, 60.0] and lines[-1]["test_regret"] == 1.0


def test_the_1shot1_tuning_file_has_the_papers_fidelities_and_the_nb101_objective() -> None:
    from lightning_nas.tuning.settings import load_tuning

    tuning = load_tuning(Path(__file__).parents[1] / "recipes" / "tuning" / "nb1shot1_darts_cs2.yaml")
    assert tuning.rungs(100) == [25, 50, 100] and tuning.scheduler == "bohb"
    assert sum(sum(b[:1]) for b in (bracket_sizes(2, 2) * 22)[:64]) == 193  # 64 iterations' configurations
    assert tuning.objective.benchmark["init_args"]["space"] == "nb1shot1" and tuning.objective.mode == "max"
