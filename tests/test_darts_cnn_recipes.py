"""DARTS CNN recipes: their network options build the intended networks, and the tiny digits fixture
trains end to end through the CLI on CPU."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import lightning_nas.nn.darts_cnn  # noqa: F401  (registers the darts_cnn network)
import lightning_nas.spaces.darts_cnn  # noqa: F401  (registers the darts_cnn space)
from conftest import ROOT, run_train
from lightning_nas.nn.darts_cnn import DartsCNNNetwork, count_parameters
from lightning_nas.spaces.darts_cnn import DartsCNNSpace

RECIPES = sorted((ROOT / "recipes").glob("darts_cnn_*.yaml"))


def _model(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["model"]["init_args"]


def test_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert {"darts_cnn_darts", "darts_cnn_standalone", "darts_cnn_digits_tiny"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_network_options_build(path):
    args = _model(path)
    assert args["space"] == "darts_cnn"
    space = DartsCNNSpace(**(args.get("space_options") or {}))
    arch = space.parse(args["architecture"]) if "architecture" in args else None
    net = DartsCNNNetwork(space, arch=arch, **args["network"])
    assert len(net.cells) == args["network"]["layers"]


def test_darts_search_recipe_is_darts():
    recipe = yaml.safe_load((ROOT / "recipes" / "darts_cnn_darts.yaml").read_text())
    args = recipe["model"]["init_args"]
    assert recipe["trainer"]["max_epochs"] == 50 and recipe["data"]["init_args"]["batch_size"] == 64
    assert args["optimizer"]["lr"] == 0.025 and args["architecture_optimizer"]["lr"] == 0.0003
    assert recipe["data"]["init_args"]["arch_split"] == 0.5
    assert args["network"]["C"] == 16 and args["network"]["layers"] == 8


def test_evaluation_recipe_is_darts_protocol():
    recipe = yaml.safe_load((ROOT / "recipes" / "darts_cnn_standalone.yaml").read_text())
    args = recipe["model"]["init_args"]
    data = recipe["data"]["init_args"]
    assert recipe["trainer"]["max_epochs"] == 600 and data["batch_size"] == 96 and data["cutout"] == 16
    assert args["optimizer"] == {"lr": 0.025, "momentum": 0.9, "weight_decay": 0.0003, "nesterov": False,
                                 "schedule": "cosine", "min_lr": 0.0, "grad_clip": 5.0}
    net = DartsCNNNetwork(DartsCNNSpace(), arch=DartsCNNSpace().parse(args["architecture"]), **args["network"])
    assert count_parameters(net, auxiliary=False) == 3_349_342
    assert net.auxiliary_weight == 0.4 and net.drop_path_prob == 0.2


def test_tiny_fixture_trains_through_the_cli(tmp_path):
    """DARTS on 8x8 digits with a 2-node, 3-cell, C=4 super-net: one epoch, a decoded answer."""
    run_dir = tmp_path / "run"
    rc = run_train(["--recipe", ROOT / "recipes" / "darts_cnn_digits_tiny.yaml", "--trainer.max_epochs", 1,
                    "--trainer.enable_progress_bar", "false", "--run_dir", run_dir], tmp_path)
    assert rc == 0
    selection = json.loads((run_dir / "selection.json").read_text())
    arch = DartsCNNSpace(num_nodes=2).parse(selection["architecture"])
    assert DartsCNNSpace(num_nodes=2).contains(arch)
