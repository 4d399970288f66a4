"""Tuning (lightning_nas.tuning, docs/tuning.md): configuration space files, their mapping onto recipe
keys and one-line errors, the trajectory records, a run stopped at a rung that resumes as if it never
stopped, and a tiny BOHB experiment on Ray Tune whose objective is the table's validation metric."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from conftest import ROOT, run_train
from lightning_nas.experiments.runner import validate
from lightning_nas.tuning.settings import TuningError, check_keys, load_space, load_tuning
from lightning_nas.tuning.trajectory import trajectory

STRATEGIES = ROOT / "recipes" / "nb201_digits_strategies.yaml"
DARTS = ROOT / "recipes" / "nb201_digits_strategies" / "darts.yaml"
SPOS = ROOT / "recipes" / "nb201_digits_strategies" / "spos.yaml"


def parse_with(*recipe: str):
    """The CLI's own parse of a recipe plus overrides (what ``train.py --tune`` checks keys with)."""
    base = [arg for path in recipe for arg in (("--recipe" if path == str(STRATEGIES) else "--model"), path)]
    return lambda overrides: validate([*base, *overrides], [], None)


@pytest.mark.parametrize("name, count", [("cs1", 2), ("cs2", 3), ("cs3", 9)])
def test_configuration_spaces_parse_and_map_onto_recipe_keys(name, count):
    space = load_space(ROOT / "recipes" / "tuning" / f"{name}.yaml")
    assert len(space.parameters) == count  # NAS-Bench-1Shot1 App. F: |CS1| = 2, |CS2| = 3, |CS3| = 9
    check_keys(space, parse_with(str(STRATEGIES), str(DARTS)))  # DARTS has every key, CS3's arch ones too
    args = space.overrides({p.name: p.probe() for p in space.parameters})
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs["--model.init_args.optimizer.weight_decay"] == "0.0003"
    assert pairs["--data.init_args.cutout_prob"] == "0.0"
    assert pairs["--data.init_args.cutout"] == "16"  # CS1/CS2's fixed length; CS3 tunes it (default 16)
    if name != "cs1":
        assert pairs["--model.init_args.optimizer.lr"] == "0.025"


def test_demo_tuning_file_scales_the_cutout_and_has_three_rungs():
    tuning = load_tuning(ROOT / "recipes" / "tuning" / "digits_darts_cs2.yaml")
    assert tuning.space.fixed == {"data.init_args.cutout": 4}
    assert tuning.rungs(16) == [4, 8, 16]
    assert tuning.space.defaults() == {"weight_decay": 3e-4, "cutout_prob": 0.0, "learning_rate": 0.025}
    with pytest.raises(TuningError, match="max_epochs 12 .* must be min_epochs 4 times a power of eta 2"):
        tuning.rungs(12)


def test_a_key_the_strategy_lacks_is_one_line_naming_it():
    space = load_space(ROOT / "recipes" / "tuning" / "cs3.yaml")
    with pytest.raises(TuningError) as caught:  # SPOS has no architecture optimiser
        check_keys(space, parse_with(str(STRATEGIES), str(SPOS)))
    message = str(caught.value)
    assert "\n" not in message
    assert "cs3.yaml: parameter arch_learning_rate: model.init_args.architecture_optimizer.lr is not a key" in message


def test_bad_key_in_a_space_file_is_one_error_line_of_train_py(tmp_path, capsys):
    (tmp_path / "space.yaml").write_text("parameters:\n  lr:\n    keys: [model.init_args.optimizer.lrr]\n"
                                         "    lower: 0.001\n    upper: 1.0\n    log: true\n")
    (tmp_path / "tune.yaml").write_text("space: space.yaml\nobjective: {table: nb201_digits_729.csv, "
                                        "metric: val_accuracy_mean}\n")
    code = run_train(["--recipe", STRATEGIES, "--model", DARTS, "--tune", tmp_path / "tune.yaml"], ROOT)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("train.py: error: ")
    assert "parameter lr: model.init_args.optimizer.lrr is not a key of this recipe" in err[0]


@pytest.mark.parametrize("text, message", [
    ("space: cs2.yaml\nobjective: {table: t.csv, metric: test_accuracy_mean}\n", "is a test metric"),
    ("space: cs2.yaml\nscheduler: tpe\nobjective: {table: t.csv}\n", "scheduler 'tpe' is not one of"),
    ("space: cs2.yaml\nfixed: {model.init_args.optimizer.lr: 0.1}\nobjective: {table: t.csv}\n",
     "fixed key model.init_args.optimizer.lr is a tuned parameter"),
    ("space: cs2.yaml\nobjective: {}\n", "needs a validation table or an on_demand"),
])
def test_tuning_file_errors(tmp_path, text, message):
    path = tmp_path / "tune.yaml"
    path.write_text(text.replace("cs2.yaml", str(ROOT / "recipes" / "tuning" / "cs2.yaml")))
    with pytest.raises(TuningError, match=message):
        load_tuning(path)


def test_trajectory_keeps_the_incumbent_and_adds_its_training_time():
    evals = [{"search_seconds": 10.0, "valid": 80.0, "test": 85.0, "test_regret": 3.0, "train_seconds": 2.0},
             {"search_seconds": 5.0, "valid": 70.0, "test": 88.0, "test_regret": 0.0, "train_seconds": 1.0},
             {"search_seconds": 20.0, "valid": 90.0, "test": 84.0, "test_regret": 4.0, "train_seconds": 3.0}]
    lines = trajectory(evals, "max", "BOHB-DARTS", 0)
    # t_sim = search time of all evaluations so far + the incumbent's training time (NB-1Shot1 Sec. 5.4)
    assert [line["t_sim"] for line in lines] == [12.0, 17.0, 38.0]
    assert [line["test_regret"] for line in lines] == [3.0, 3.0, 4.0]  # chosen by validation, never test
    assert set(lines[0]) == {"method", "repetition", "t_sim", "valid", "test", "test_regret"}


def _tiny_darts(tmp_path: Path) -> list[str]:
    return ["--recipe", STRATEGIES, "--model", DARTS, "--trainer.max_epochs", "2", "--threads", "1",
            "--model.init_args.network.C", "4", "--data.init_args.dataset", "digits",
            "--ranking.num_architectures", "0", "--selection.num_architectures", "0",
            "--decoding.every_n_epochs", "1", "--trainer.enable_progress_bar", "false"]


@pytest.mark.slow
def test_a_stopped_run_resumes_as_if_it_never_stopped(tmp_path):
    """A promoted trial: stopped at epoch 1 of 2 (--stop_at_epoch), then --resume; its step count
    continues and every logged number equals the run that never stopped."""
    import torch

    args = _tiny_darts(tmp_path)
    assert run_train([*args, "--run_dir", tmp_path / "full"], ROOT) == 0
    assert run_train([*args, "--run_dir", tmp_path / "part", "--stop_at_epoch", "1"], ROOT) == 0
    step = torch.load(tmp_path / "part" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert step > 0
    assert run_train(["--resume", tmp_path / "part"], ROOT) == 0
    resumed = torch.load(tmp_path / "part" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    full = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert resumed == full == 2 * step  # DARTS' step is one weight step (two optimisers, manual)
    for name in ("metrics.csv", "selection.json", "decoding.csv"):
        assert (tmp_path / "part" / name).read_text() == (tmp_path / "full" / name).read_text(), name


def _validation_table(path: Path) -> dict[str, float]:
    """A validation table over all 729 cells with values no search could produce by chance."""
    from lightning_nas.benchmarks.tabulated import resolve_table

    with resolve_table("nb201_digits_729.csv").open(newline="") as handle:
        cells = [row["ArchitectureString"] for row in csv.DictReader(handle)]
    values = {c: int(hashlib.sha1(c.encode()).hexdigest()[:6], 16) % 10_000 / 100 for c in cells}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ArchitectureString", "val_accuracy_mean"])
        writer.writerows(values.items())
    with path.with_suffix(".times.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ArchitectureString", "train_seconds_mean"])
        writer.writerows((c, 1000.0) for c in cells)
    return values


@pytest.mark.slow
def test_tiny_bohb_experiment_optimises_the_tables_validation_metric_of_the_answer(tmp_path):
    values = _validation_table(tmp_path / "val.csv")
    (tmp_path / "tune.yaml").write_text(
        f"space: {ROOT / 'recipes' / 'tuning' / 'cs2.yaml'}\nfixed: {{data.init_args.cutout: 4}}\n"
        "scheduler: bohb\nnum_samples: 2\nmin_epochs: 1\neta: 2\nseed: 0\n"
        f"objective: {{table: {tmp_path / 'val.csv'}, metric: val_accuracy_mean, mode: max, "
        f"times: {tmp_path / 'val.times.csv'}}}\n")
    exp = tmp_path / "exp"
    code = run_train([*_tiny_darts(tmp_path), "--tune", tmp_path / "tune.yaml", "--experiment_dir", exp,
                      "--num_cpus", "1"], ROOT)
    assert code == 0
    summary = json.loads((exp / "tuning.json").read_text())
    evals = summary["evaluations"]
    assert {e["trial"] for e in evals} == {p.name for p in exp.glob("trial_*")} and len(evals) >= 2
    assert evals[0]["config"] == {"weight_decay": 3e-4, "cutout_prob": 0.0, "learning_rate": 0.025}  # defaults first
    for e in evals:  # the objective is the table's validation value of the run's own answer (selection.json)
        selection = json.loads((exp / e["trial"] / "selection.json").read_text())
        if e["epochs"] == max(x["epochs"] for x in evals if x["trial"] == e["trial"]):
            assert e["architecture"] == selection["architecture"]
            assert e["test"] == selection["ground_truth"] and e["test_regret"] == selection["regret"]
        assert e["valid"] == values[e["architecture"]]
    best = max(evals, key=lambda e: e["valid"])
    assert summary["incumbent"]["valid"] == best["valid"] and summary["incumbent"]["trial"] == best["trial"]
    lines = [json.loads(line) for line in (exp / "trajectories.jsonl").read_text().splitlines()]
    assert len(lines) == len(evals) and lines[-1]["valid"] == best["valid"]
    assert lines[-1]["t_sim"] == pytest.approx(sum(e["search_seconds"] for e in evals) + 1000.0, abs=1e-5)
    promoted = [t for t in {e["trial"] for e in evals} if sum(x["trial"] == t for x in evals) == 2]
    for trial in promoted:  # a promoted trial continued its run: one start, one resume, steps continue
        record = json.loads((exp / trial / "trial.json").read_text())
        assert record["arguments"][:2] == ["--resume", str(exp / trial)] and record["resumed"]
        steps = [int(row["step"]) for row in csv.DictReader((exp / trial / "metrics.csv").open()) if row["step"]]
        assert steps == sorted(steps) and len(set(steps)) > 1
    assert summary["overhead"]["per_trial_seconds"] is not None


def test_regularisation_study_grids_parse_on_a_1shot1_recipe():
    """The cutout and L2 grids of NAS-Bench-1Shot1 Sec. 5.3 (recipes/overlays/nb1shot1_regularisation.yaml) parse
    at every grid point, layered on the DARTS 1Shot1 recipe, with its 100 search epochs."""
    from lightning_nas.experiments.design import parse_grid

    recipes = ["--recipe", str(ROOT / "recipes" / "nb1shot1_darts.yaml"),
               "--recipe", str(ROOT / "recipes" / "overlays" / "nb1shot1_regularisation.yaml")]
    text = (ROOT / "recipes" / "overlays" / "nb1shot1_regularisation.yaml").read_text()
    assert "--grid data.init_args.cutout=0,16" in text
    assert "--grid model.init_args.optimizer.weight_decay=1e-4,3e-4,9e-4,27e-4,81e-4" in text
    # the keys and the extreme values (each grid point parses the same way)
    assert validate(recipes, parse_grid(["data.init_args.cutout=0,16",
                                         "model.init_args.optimizer.weight_decay=1e-4,81e-4"]), 0) == 0
    assert "max_epochs: 100" in text


def test_batches_start_at_the_fit_loops_epoch():
    """A run resumed from an epoch-end checkpoint (a stopped trial) gets no loader state from Lightning:
    its batches must still be those of the next epoch, not epoch 0's again (SeededDataModule.continue_epochs)."""
    import torch

    from lightning_nas.data.batches import SeededBatches

    images, labels = torch.zeros(8, 1, 2, 2, dtype=torch.uint8), torch.arange(8)
    batches = SeededBatches(images, labels, {"weights": torch.arange(8)}, 4, seed=0)
    fresh = [b["weights"]["labels"].tolist() for b in batches]
    assert next(iter(batches))["epoch"] == 1  # on its own, it counts the epochs it iterated
    batches = SeededBatches(images, labels, {"weights": torch.arange(8)}, 4, seed=0)
    batches.epoch_now = lambda: 1
    resumed = list(batches)
    assert resumed[0]["epoch"] == 1 and [b["weights"]["labels"].tolist() for b in resumed] != fresh


def test_tune_seed_makes_a_repetition_of_the_tuning_file(tmp_path, monkeypatch, capsys):
    """``--tune_seed N``: the tuner runs with seed N instead of the file's (the trials' seed is the
    recipe's ``seed_everything``); without ``--tune`` it is one line of error."""
    import lightning_nas.tuning.runner as runner

    seen = {}

    def fake_run(tuning, argv, root, rungs, *, seed, **options):
        seen.update(tuning_seed=tuning.seed, recipe_seed=seed)
        return 0

    monkeypatch.setattr(runner, "run_tuning", fake_run)
    tune = ROOT / "recipes" / "tuning" / "digits_darts_cs2.yaml"
    args = ["--recipe", STRATEGIES, "--model", DARTS, "--trainer.max_epochs", "16", "--tune", tune,
            "--experiment_dir", tmp_path / "exp"]
    assert run_train([*args, "--tune_seed", "3", "--seed_everything", "3"], ROOT) == 0
    assert seen == {"tuning_seed": 3, "recipe_seed": 3}
    assert run_train(args, ROOT) == 0 and seen["tuning_seed"] == load_tuning(tune).seed
    assert run_train(["--recipe", STRATEGIES, "--tune_seed", "3"], ROOT) == 2
    assert "--tune_seed is the tuner's seed of a --tune experiment" in capsys.readouterr().err
