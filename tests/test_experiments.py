"""The experiment runner (seeds x grid on Ray Tune) and ``--reproduce``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import run_train
from lightning_nas.experiments import design, runner
from lightning_nas.experiments.design import ExperimentError, parse_grid, parse_seeds
from lightning_nas.run.reproduce import compare_runs


# ------------------------------------------------------------------------------------------ design
def test_seeds():
    assert parse_seeds("0-9") == list(range(10))
    assert parse_seeds("0-2,5, 7") == [0, 1, 2, 5, 7]
    assert parse_seeds("3,1,3") == [3, 1]
    for bad in ("", "a", "0-x", "3-1", "-1", "1.5"):
        with pytest.raises(ExperimentError, match="^--seeds"):
            parse_seeds(bad)


def test_grid_and_trial_names():
    factors = parse_grid(["ranking.bn_mode,selection.bn_mode=batch,running", "model.init_args.optimizer.lr=0.05,0.1",
                          "model.init_args.network=[1, 2],{C: 4, N: 1}"])
    assert [f.label for f in factors] == ["bn_mode", "lr", "network"]
    assert factors[0].keys == ("ranking.bn_mode", "selection.bn_mode")
    assert factors[2].values == ("[1, 2]", "{C: 4, N: 1}")
    trials = design.expand(factors[:2], [0, 1])
    assert [t.name for t in trials] == [
        "bn_mode=batch__lr=0.05__seed0", "bn_mode=batch__lr=0.05__seed1", "bn_mode=batch__lr=0.1__seed0",
        "bn_mode=batch__lr=0.1__seed1", "bn_mode=running__lr=0.05__seed0", "bn_mode=running__lr=0.05__seed1",
        "bn_mode=running__lr=0.1__seed0", "bn_mode=running__lr=0.1__seed1"]
    assert trials[5].overrides == ["--ranking.bn_mode", "running", "--selection.bn_mode", "running",
                                   "--model.init_args.optimizer.lr", "0.05"]
    assert trials[5].factors == {"bn_mode": "running", "lr": "0.05"} and trials[5].seed == 1
    # values that are not file-name safe get a hash so that names stay unique and deterministic
    odd = design.expand(parse_grid(["data.init_args.data_dir=a/b,a_b"]), [0])
    assert odd[0].name != odd[1].name and odd[0].name.startswith("data_dir=a_b-") and odd[1].name == "data_dir=a_b__seed0"
    assert design.expand(parse_grid(["data.init_args.data_dir=a/b"]), [0])[0].name == odd[0].name
    # a recipe file as a value (one file per strategy) reads as its stem, still unique through the hash
    files = design.expand(parse_grid(["model=recipes/s/darts.yaml,recipes/t/darts.yaml"]), [0])
    assert [t.name.split("-")[0] for t in files] == ["model=darts"] * 2 and files[0].name != files[1].name
    assert files[0].overrides == ["--model", "recipes/s/darts.yaml"]
    # two factors with the same last key part keep their full keys
    assert [f.label for f in parse_grid(["ranking.bn_mode=batch", "selection.bn_mode=running"])] == \
        ["ranking.bn_mode", "selection.bn_mode"]


@pytest.mark.parametrize("option, message", [
    ("ranking.bn_mode", "expected KEY=V1,V2"), ("ranking.bn mode=batch", "not a recipe key"),
    ("ranking.bn_mode=batch,,running", "empty value"), ("ranking.bn_mode=batch,batch", "listed twice"),
    ("seed_everything=1,2", "use --seeds"), ("run_dir=a,b", "set twice or by the runner")])
def test_grid_errors_name_the_option(option, message):
    with pytest.raises(ExperimentError, match=message) as error:
        parse_grid([option])
    assert str(error.value).startswith(f"--grid {option!r}") and "\n" not in str(error.value)


def test_bad_input_is_one_line_before_anything_runs(tiny_recipe, tmp_path, capsys):
    base = ["--recipe", tiny_recipe, "--experiment_dir", tmp_path / "exp"]
    cases = [(["--seeds", "0-x"], "train.py: error: --seeds: expected seeds like 0-9"),
             (["--seeds", "0", "--grid", "ranking.bn_mod=batch"], "train.py: error: unrecognized arguments: --ranking.bn_mod"),
             (["--seeds", "0", "--grid", "ranking.bn_mode=batch,sideways"], 'Parser key "ranking.bn_mode"'),
             (["--seeds", "0", "--run_dir", tmp_path / "x"], "train.py: error: --run_dir: each trial gets its own"),
             (["--seeds", "0", "--num_cpus", "0"], 'train.py: error: Parser key "num_cpus": expected an integer > 0')]
    for extra, expected in cases:
        assert run_train([*base, *extra], cwd=tmp_path) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert expected in err[-1], err
    assert not (tmp_path / "exp").exists()


def test_rerun_runs_only_unfinished_trials(tmp_path, monkeypatch, capsys):
    """The skipping rule, with Ray replaced by an in-process fake: finished trials are never rerun."""
    calls: list[list[str]] = []

    def fake_ray(specs, root, *args):
        calls.append([s["name"] for s in specs])
        outcomes = {}
        for spec in specs:
            run_dir = Path(spec["run_dir"])
            run_dir.mkdir(parents=True, exist_ok=True)
            status = "failed" if spec["name"] == "bn_mode=running__seed1" and len(calls) == 1 else "finished"
            (run_dir / "trial.json").write_text(json.dumps({"status": status}))
            outcomes[spec["name"]] = (status, "ValueError: boom" if status == "failed" else "")
        return outcomes

    monkeypatch.setattr(runner, "run_with_ray", fake_ray)
    factors, seeds = parse_grid(["ranking.bn_mode=batch,running"]), [0, 1]
    trials = design.expand(factors, seeds)
    root = tmp_path / "exp"
    assert runner.run_experiment(trials, ["--recipe", "r.yaml"], root, factors, seeds) == 1
    out = capsys.readouterr().out
    assert "failed    bn_mode=running__seed1: ValueError: boom" in out and "3 of 4 trials finished, 1 failed" in out
    assert runner.run_experiment(trials, ["--recipe", "r.yaml"], root, factors, seeds) == 0
    shutil.rmtree(root / "bn_mode=batch__seed0")
    assert runner.run_experiment(trials, ["--recipe", "r.yaml"], root, factors, seeds) == 0
    assert runner.run_experiment(trials, ["--recipe", "r.yaml"], root, factors, seeds) == 0
    assert calls == [[t.name for t in trials], ["bn_mode=running__seed1"], ["bn_mode=batch__seed0"]]
    assert "skipped   bn_mode=batch__seed1 (finished earlier)" in capsys.readouterr().out
    record = json.loads((root / "experiment.json").read_text())
    assert record["seeds"] == [0, 1] and record["grid"][0]["keys"] == ["ranking.bn_mode"]


def test_failed_trial_is_recorded_not_raised(tiny_recipe, tmp_path):
    trial = design.expand(parse_grid(["model.init_args.optimizer.lr=-1"]), [0])[0]
    spec = runner.trial_spec(trial, ["--recipe", str(tiny_recipe)], tmp_path / "exp", threads=1)
    result = runner.execute_trial(spec)  # never raises
    assert result["status"] == "failed" and "model.optimizer.lr" in result["error"], result
    record = json.loads((tmp_path / "exp" / trial.name / "trial.json").read_text())
    assert record["status"] == "failed" and "model.optimizer.lr" in record["error"], record
    assert "Traceback" in (tmp_path / "exp" / trial.name / "train.log").read_text()
    assert design.trial_status(tmp_path / "exp" / trial.name) == "failed"


# ------------------------------------------------------------------------------------------ --reproduce
def test_reproduce_gives_identical_results(tiny_recipe, tmp_path, capsys):
    original = tmp_path / "run"
    assert run_train(["--recipe", tiny_recipe, "--run_dir", original], cwd=tmp_path) == 0
    assert json.loads((original / "run.json").read_text())["torch_threads"] == 1
    # a different thread count changes CPU float reductions: --reproduce must use the recorded one
    torch.set_num_threads(2)
    try:
        assert run_train(["--reproduce", original], cwd=tmp_path) == 0
    finally:
        torch.set_num_threads(1)
    out = capsys.readouterr().out
    assert "reproduce: identical" in out and "selection.json" in out and "metrics.csv" in out
    rerun = tmp_path / "run-reproduce"
    result = json.loads((rerun / "reproduce.json").read_text())
    assert result["identical"] and result["values_compared"] > 50
    assert "ranking/epoch_000.csv" in result["files"]
    # a single changed value is found and named
    selection = json.loads((rerun / "selection.json").read_text())
    selection["finalists"][1]["val_accuracy"] += 1e-9
    (rerun / "selection.json").write_text(json.dumps(selection))
    changed = compare_runs(original, rerun)
    assert not changed["identical"] and len(changed["differences"]) == 1
    assert changed["differences"][0].startswith("selection.json finalists.1.val_accuracy:")
    (rerun / "metrics.csv").write_text((rerun / "metrics.csv").read_text().replace(",0,", ",1,", 1))
    assert any(d.startswith("metrics.csv row") for d in compare_runs(original, rerun)["differences"])
    # the same target again is refused with one line (it already holds a run)
    assert run_train(["--reproduce", original], cwd=tmp_path) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_reproduce_needs_a_run_directory(tmp_path, capsys):
    assert run_train(["--reproduce", tmp_path / "nothing"], cwd=tmp_path) == 2
    assert "--reproduce" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ Ray
@pytest.mark.slow
def test_ray_grid_runs_and_resumes_only_the_deleted_trial(tiny_recipe, tmp_path, capsys):
    """2 seeds x 2 BN modes through a local Ray cluster; after deleting one trial only it reruns,
    and it reproduces its numbers exactly."""
    root = tmp_path / "exp"
    command = ["--recipe", tiny_recipe, "--seeds", "0-1", "--grid", "ranking.bn_mode,selection.bn_mode=batch,running",
               "--experiment_dir", root, "--num_cpus", "2"]
    assert run_train(command, cwd=tmp_path) == 0
    names = ["bn_mode=batch__seed0", "bn_mode=batch__seed1", "bn_mode=running__seed0", "bn_mode=running__seed1"]
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.is_dir()) == names
    records = {n: (root / n / "trial.json").read_text() for n in names}
    for name in names:
        assert json.loads(records[name])["status"] == "finished"
        assert (root / name / "selection.json").is_file() and (root / name / "metrics.csv").is_file()
    config = (root / "bn_mode=running__seed1" / "config.yaml").read_text()
    assert "seed_everything: 1" in config and config.count("bn_mode: running") == 2
    selection = (root / "bn_mode=batch__seed1" / "selection.json").read_text()
    capsys.readouterr()

    shutil.rmtree(root / "bn_mode=batch__seed1")
    assert run_train(command, cwd=tmp_path) == 0
    out = capsys.readouterr().out
    assert "4 trials, 3 finished earlier, 1 to run" in out
    for name in names:
        if name != "bn_mode=batch__seed1":
            assert (root / name / "trial.json").read_text() == records[name]  # untouched
    assert json.loads((root / "bn_mode=batch__seed1" / "trial.json").read_text())["status"] == "finished"
    assert (root / "bn_mode=batch__seed1" / "selection.json").read_text() == selection
